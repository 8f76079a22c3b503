"""Which byte ranges of a partial file are finished: in memory, and on disk next to the file.

A parallel download writes its partial file (`blobs/<etag>.incomplete`) in place, range by range,
so its size says nothing about what arrived. The map says it: `blobs/<etag>.incomplete.ranges`, an
append-only log of 16-byte records (start, end; little-endian u64), one record written right after
the bytes it names (docs/architecture.md §11). A kill -9 then loses only the bytes in flight: the
page cache keeps both the data and the record. `sync()` (on a schedule) flushes both to the disk,
data first, so a power cut never leaves a record naming bytes that are not there. A torn last
record is ignored; the log is compacted when it grows long.

A partial file without a map was written by the earlier, sequential engine: its whole length is
a finished prefix.
"""

from __future__ import annotations

import bisect
import os
import struct
import threading
from pathlib import Path

MAP_SUFFIX = ".ranges"
_RECORD = struct.Struct("<QQ")
_COMPACT_AFTER = 4096  # records in the log before it is rewritten as merged ranges


class RangeSet:
    """Merged, sorted half-open ranges [start, end). Not thread-safe by itself."""

    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges or ():
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)  # first range that ends at or after `start`
        j = bisect.bisect_right(self._starts, end)  # ranges before j start at or before `end`
        if i < j:  # overlaps or touches ranges i..j-1: merge them into one
            start, end = min(start, self._starts[i]), max(end, self._ends[j - 1])
        self._starts[i:j], self._ends[i:j] = [start], [end]

    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def prefix(self) -> int:
        """End of the finished run that starts at byte 0 (0 if byte 0 is missing)."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def missing(self, size: int) -> list[tuple[int, int]]:
        """The gaps in [0, size)."""
        gaps, pos = [], 0
        for s, e in zip(self._starts, self._ends, strict=True):
            if s > pos:
                gaps.append((pos, min(s, size)))
            pos = max(pos, e)
        if pos < size:
            gaps.append((pos, size))
        return [(s, e) for s, e in gaps if e > s]

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)


class SegmentMap:
    """The finished ranges of one partial file and their log; thread-safe (workers add ranges)."""

    def __init__(self, partial: Path, size: int) -> None:
        self.partial, self.size = partial, size
        self.path = map_path(partial)
        self._lock = threading.Lock()
        self._done = RangeSet()
        self._records = 0
        self._fd: int | None = None

    def load(self) -> None:
        """Read the log (or adopt a sequential partial file) and open the log for appending."""
        ranges = read_ranges(self.partial, self.size)
        with self._lock:
            self._done = RangeSet(ranges)
            self._rewrite()

    def add(self, start: int, end: int) -> None:
        """Record [start, end) as written; call right after the bytes were written."""
        with self._lock:
            self._done.add(start, end)
            if self._fd is None:
                return
            os.write(self._fd, _RECORD.pack(start, end))
            self._records += 1
            if self._records > _COMPACT_AFTER:
                self._rewrite()

    def done(self) -> int:
        with self._lock:
            return self._done.total()

    def prefix(self) -> int:
        with self._lock:
            return self._done.prefix()

    def missing(self) -> list[tuple[int, int]]:
        with self._lock:
            return self._done.missing(self.size)

    def complete(self) -> bool:
        return not self.missing()

    def reset(self) -> None:
        """Forget every range (the file proved wrong)."""
        with self._lock:
            self._done = RangeSet()
            self._rewrite()

    def sync(self) -> None:
        """Flush the log to the disk (after the data file was flushed)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def close(self, *, remove: bool = False) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)

    def _rewrite(self) -> None:
        """Write the merged ranges to a new log and swap it in (lock held)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = b"".join(_RECORD.pack(s, e) for s, e in self._done.ranges())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._records = len(self._done)


def map_path(partial: Path) -> Path:
    return partial.with_name(partial.name + MAP_SUFFIX)


def read_ranges(partial: Path, size: int) -> list[tuple[int, int]]:
    """The finished ranges of `partial` as its map says (blocking; stats and one small read)."""
    log = map_path(partial)
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        if not partial.exists():
            return []
        return [(0, min(partial.stat().st_size, size))]  # the sequential engine's partial file
    usable = len(data) - len(data) % _RECORD.size  # a torn last record never counts
    done = RangeSet()
    for start, end in _RECORD.iter_unpack(data[:usable]):
        done.add(min(start, size), min(end, size))
    return done.ranges()


def bytes_done(partial: Path, size: int) -> int:
    return sum(e - s for s, e in read_ranges(partial, size))
