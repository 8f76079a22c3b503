"""The one reader of server logs (mlxui/servers/logs.py): tails, the supervisor's message tail, and
following a file through appends, a character split between writes, rotation and truncation; and
the Servers page's log viewer, which follows through it. The JSON API and `mlxui servers logs -f`
are tested on a real server in test_servers_api.py and test_cli_servers.py."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing.user import User

from mlxui.servers import logs
from mlxui.servers.logs import follow_file, read_log_tail, read_tail

POLL = 0.01


def write(path: Path, data: bytes, mode: str = "ab") -> None:
    with open(path, mode) as f:
        f.write(data)


def test_read_tail_gives_the_last_lines_and_the_size(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, b"".join(b"line %d\n" % i for i in range(1, 1001)) + b"partial")
    text, size = read_tail(log, 3)
    assert text == "line 999\nline 1000\npartial" and size == log.stat().st_size
    assert read_tail(log, 0) == ("", size)
    assert read_tail(log, 5000)[0].count("\n") == 1000  # the whole file, not more
    assert read_tail(tmp_path / "missing.log", 10) == ("", 0)


def test_read_tail_since_an_offset_leaves_out_earlier_runs(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, b"old run\n=== header\n")
    offset = log.stat().st_size
    write(log, b"new 1\nnew 2\n")
    assert read_tail(log, 10, since=offset)[0] == "new 1\nnew 2\n"
    assert read_log_tail(log, 10, offset) == "new 1\nnew 2"
    assert read_log_tail(log, 1) == "new 2"


def test_a_tail_reads_no_more_than_its_byte_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "MAX_TAIL_BYTES", 20)
    log = tmp_path / "a.log"
    write(log, b"a very long first line\nshort\nlast\n")  # the cap falls inside the first line
    assert read_tail(log, 100)[0] == "short\nlast\n", "a cut line is left out, not shown in part"
    write(log, b"ab\n0123456789abcdefghi\n", "wb")  # the cap (20 bytes back) falls on a line start
    assert read_tail(log, 100)[0] == "0123456789abcdefghi\n"


def test_an_unreadable_log_is_a_sentence_in_the_message(tmp_path: Path) -> None:
    assert read_log_tail(tmp_path) == f"(the log {tmp_path} cannot be read: Is a directory)"
    missing = tmp_path / "gone.log"
    assert read_log_tail(missing) == f"(the log {missing} cannot be read: No such file or directory)"


class Follower:
    """Collects what follow_file yields, from a task, until stopped."""

    def __init__(self, path: Path, lines: int, max_s: float | None = None) -> None:
        self.text = ""
        self.stopped = False

        async def gone() -> bool:
            return self.stopped

        self.stream: AsyncIterator[str] = follow_file(path, lines, max_s, gone, poll_s=POLL)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for chunk in self.stream:
            self.text += chunk

    async def wait_for(self, text: str, timeout: float = 5.0) -> None:
        for _ in range(int(timeout / POLL)):
            if self.text.endswith(text):
                return
            await asyncio.sleep(POLL)
        raise AssertionError(f"{text!r} never arrived; got {self.text!r}")

    async def stop(self) -> None:
        self.stopped = True
        await asyncio.wait_for(self.task, 5)


async def test_follow_yields_the_tail_then_what_is_appended(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, b"one\ntwo\nthree\n")
    follower = Follower(log, 2)
    await follower.wait_for("two\nthree\n")
    write(log, b"four\n")
    await follower.wait_for("four\n")
    write(log, "caf\u00e9\n".encode()[:4])  # "é" is two bytes: the first arrives alone
    await asyncio.sleep(10 * POLL)
    write(log, "caf\u00e9\n".encode()[4:])
    await follower.wait_for("caf\u00e9\n")
    await follower.stop()
    assert follower.text == "two\nthree\nfour\ncaf\u00e9\n"


async def test_follow_survives_rotation_truncation_and_a_late_log(tmp_path: Path) -> None:
    log = tmp_path / "late.log"
    follower = Follower(log, 10)
    await asyncio.sleep(5 * POLL)
    write(log, b"first run\n")
    await follower.wait_for("first run\n")
    os.replace(log, tmp_path / "late.log.1")  # a start moves a big log aside...
    await asyncio.sleep(5 * POLL)
    write(log, b"second run, longer than the first\n")  # ...and writes a new one
    await follower.wait_for("second run, longer than the first\n")
    write(log, b"", "wb")  # truncated
    await asyncio.sleep(5 * POLL)
    write(log, b"third\n")
    await follower.wait_for("third\n")
    await follower.stop()
    assert follower.text == "first run\nsecond run, longer than the first\nthird\n"


async def test_follow_ends_after_max_s(tmp_path: Path) -> None:
    follower = Follower(tmp_path / "a.log", 10, max_s=0.1)
    await asyncio.wait_for(follower.task, 2)


async def test_the_log_viewer_shows_the_tail_and_new_lines(
    mlxui_home: Path, user: User, tmp_path: Path
) -> None:
    from mlxui.ui.components.log_viewer import LogViewer

    log = tmp_path / "srv.log"
    write(log, b"".join(b"old %d\n" % i for i in range(700)))

    @ui.page("/log-viewer-test")
    def page() -> None:
        LogViewer("srv", log).open()

    await user.open("/log-viewer-test")
    viewer = user.find(marker="server-log").elements.pop()

    def shown() -> list[str]:
        return [child.text for child in viewer.default_slot.children]

    for _ in range(100):
        if shown():
            break
        await asyncio.sleep(0.05)
    assert shown()[0] == "old 200" and shown()[-1] == "old 699"  # the last 500 lines
    write(log, b"new line\n")
    for _ in range(100):
        if shown()[-1] == "new line":
            break
        await asyncio.sleep(0.05)
    assert shown()[-2:] == ["old 699", "new line"]
