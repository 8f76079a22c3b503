"""Which byte ranges of which files the download's connections fetch next (thread-safe).

Small files come first (the model's card, config and tokenizer are complete early); each file's
missing ranges are cut into pieces of about size ÷ connections, smaller towards the end (a piece
is at most the bytes left ÷ connections), so the last piece never runs on one connection while
the others wait, and no request is ever cut short: every byte is asked for exactly once. A file
whose server ignores `Range` becomes one stream from byte 0 (`Segment.whole`).
docs/architecture.md §11.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mlxui.hub.file_job import FileJob

MIN_PIECE = 1 << 20
MAX_PIECE = 64 << 20


@dataclass(eq=False)
class Segment:
    job: FileJob
    start: int
    end: int  # exclusive; lowered when the file becomes one stream (go_whole)
    pos: int  # bytes before this are written
    whole: bool = False


class Scheduler:
    def __init__(self, jobs: list[FileJob], connections: int) -> None:
        self._lock = threading.Lock()
        self.jobs = sorted(jobs, key=lambda j: (j.f.size, j.f.path))
        self._todo: dict[FileJob, list[tuple[int, int]]] = {}
        self._active: list[Segment] = []
        self._pieces = {j: _piece(j.f.size, connections) for j in self.jobs}
        self.moved = 0  # bytes written by all connections since the start

    def add(self, job: FileJob) -> None:
        """Queue the missing ranges of `job` (after it was opened, or started over)."""
        with self._lock:
            self._todo[job] = list(job.map.missing())

    def take(self, connections: int) -> Segment | None:
        with self._lock:
            left = sum(e - s for todo in self._todo.values() for s, e in todo)
            share = max(MIN_PIECE, -(-left // max(1, connections)))
            for job in self.jobs:
                todo = self._todo.get(job)
                if todo:
                    start, end = todo[0]
                    cut = end if job.whole else min(end, start + min(self._pieces[job], share))
                    todo[0:1] = [(cut, end)] if cut < end else []
                    seg = Segment(job, start, cut, start, whole=job.whole)
                    self._active.append(seg)
                    return seg
            return None

    def clip(self, seg: Segment, n: int) -> int:
        """How many of the next `n` bytes still belong to `seg` (0: stop reading)."""
        with self._lock:
            return max(0, min(n, seg.end - seg.pos))

    def advance(self, seg: Segment, n: int) -> None:
        with self._lock:
            seg.pos += n
            self.moved += n

    def go_whole(self, seg: Segment) -> bool:
        """The server answered `seg` with the whole file (200): make `seg` the file's one stream
        from byte 0. False if another connection already streams the whole file."""
        job = seg.job
        with self._lock:
            if any(s.whole and s is not seg for s in self._active if s.job is job):
                seg.end = seg.pos
                return False
            job.whole = True
            self._todo[job] = []
            for other in self._active:
                if other.job is job and other is not seg:
                    other.end = other.pos
            seg.start, seg.pos, seg.end, seg.whole = 0, 0, job.f.size, True
            return True

    def release(self, seg: Segment) -> None:
        """A connection is done with `seg`; what it did not write goes back to the queue."""
        with self._lock:
            self._active.remove(seg)
            if seg.pos >= seg.end:
                return
            todo = self._todo.setdefault(seg.job, [])
            todo.append((seg.pos, seg.end))
            todo.sort()

    def idle(self, job: FileJob) -> bool:
        """Nothing queued or in flight for `job`."""
        with self._lock:
            return not self._todo.get(job) and not any(s.job is job for s in self._active)

    def busy_files(self) -> list[str]:
        """Paths of the files being fetched now, most connections first."""
        with self._lock:
            counts: dict[str, int] = {}
            for s in self._active:
                counts[s.job.f.path] = counts.get(s.job.f.path, 0) + 1
        return sorted(counts, key=lambda p: -counts[p])

    def in_flight(self) -> int:
        with self._lock:
            return len(self._active)


def _piece(size: int, connections: int) -> int:
    return max(MIN_PIECE, min(MAX_PIECE, -(-size // max(1, connections))))
