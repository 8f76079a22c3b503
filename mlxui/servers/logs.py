"""Reading a server's log file: its last lines, and what is appended to it afterwards.

The one reader for the JSON API (`/logs`, `/logs/stream`, hence `mlxui servers logs [-f]`), the
Servers page's log viewer and the supervisor's failure messages. A start moves a big log aside
(launch.open_log), so a follower that finds another file at the path, or a shorter one, reads
the new file from its beginning.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO

LOG_TAIL_LINES = 30  # what a failure message quotes
MAX_TAIL_BYTES = 4 * 1024 * 1024  # a tail never reads more than this of the log's end
FOLLOW_POLL_S = 0.25
FOLLOW_CHUNK_BYTES = 256 * 1024
_BLOCK_BYTES = 64 * 1024


def read_tail(path: Path, lines: int, *, since: int = 0) -> tuple[str, int]:
    """The last `lines` lines of `path` written at or after byte `since` (at most MAX_TAIL_BYTES),
    line ends kept, and the file's size then. A log that does not exist yet reads as ("", 0)."""
    try:
        with open(path, "rb") as log:
            data, size = _tail_bytes(log, lines, since)
    except FileNotFoundError:
        return "", 0
    return data.decode(errors="replace"), size


def read_log_tail(path: Path, lines: int = LOG_TAIL_LINES, offset: int = 0) -> str:
    """The last `lines` lines written at or after `offset`, for a message: no trailing line break,
    and a sentence instead when the log cannot be read (the message is still worth showing)."""
    try:
        with open(path, "rb") as log:
            data, _ = _tail_bytes(log, lines, offset)
    except OSError as exc:
        return f"(the log {path} cannot be read: {exc.strerror or exc})"
    return "\n".join(data.decode(errors="replace").splitlines())


async def follow_file(
    path: Path,
    lines: int,
    max_s: float | None = None,
    gone: Callable[[], Awaitable[bool]] | None = None,
    *,
    poll_s: float = FOLLOW_POLL_S,
) -> AsyncIterator[str]:
    """Yield the last `lines` lines of `path`, then what is appended, polling every `poll_s`;
    survives rotation, truncation and a log that appears only later. Ends after `max_s` seconds
    (None: never) or when `gone()` says nobody reads any more."""
    text, offset = await asyncio.to_thread(read_tail, path, lines)
    if text:
        yield text
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks may split a character
    identity = await asyncio.to_thread(_identity, path)
    deadline = None if max_s is None else time.monotonic() + max_s
    while deadline is None or time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
        if gone is not None and await gone():
            return
        now = await asyncio.to_thread(_identity, path)
        if now is None:
            continue  # rotated away and not recreated yet
        if now[0] != (identity or now)[0] or now[1] < offset:
            offset = 0  # a new file (rotation) or truncated: start from its beginning
            decoder.reset()
        identity = now
        if now[1] > offset:
            chunk = await asyncio.to_thread(_read_from, path, offset)
            offset += len(chunk)
            yield decoder.decode(chunk)


def _tail_bytes(log: IO[bytes], lines: int, since: int) -> tuple[bytes, int]:
    size = log.seek(0, os.SEEK_END)
    floor = max(since, size - MAX_TAIL_BYTES, 0)
    if lines <= 0:
        return b"", size
    start, data = size, b""
    # Read backwards in blocks until enough line breaks are in hand (+1: the last line's own).
    while start > floor and data.count(b"\n") <= lines:
        step = min(_BLOCK_BYTES, start - floor)
        start -= step
        log.seek(start)
        data = log.read(step) + data
    if start > since and data.count(b"\n") <= lines:  # cut off by MAX_TAIL_BYTES
        log.seek(start - 1)
        if log.read(1) != b"\n":
            data = data.partition(b"\n")[2]  # the first line is a partial one
    return b"".join(data.splitlines(keepends=True)[-lines:]), size


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size


def _read_from(path: Path, offset: int) -> bytes:
    with open(path, "rb") as log:
        log.seek(offset)
        return log.read(FOLLOW_CHUNK_BYTES)
