"""The download progress line of `mlxui models pull`: bytes, speed and ETA."""

from __future__ import annotations

import time
from typing import IO, Any

from mlxui.format import human_bytes


class ProgressBar:
    """Bytes, speed and ETA: redrawn in place (\\r) on a terminal, a line every `interval` s otherwise."""

    def __init__(self, repo_id: str, out: IO[str], *, interval: float = 2.0) -> None:
        from mlxui.hub.pull import SpeedMeter

        self.repo_id, self.out, self.interval = repo_id, out, interval
        self.tty = out.isatty()
        self.meter = SpeedMeter(half_life=2.0, interval=0.5)
        self.bytes_done = self.bytes_total = 0
        self.drawn_at = 0.0
        self.note = ""
        self.dirty = False  # a \r line is on screen

    def update(self, progress: Any) -> None:
        self.bytes_done, self.bytes_total = progress.bytes_done, progress.bytes_total
        speed = self.meter.update(progress.bytes_done)
        if progress.note and progress.note != self.note:
            self._line(f"  {progress.note}")
        self.note = progress.note
        now = time.monotonic()
        if now - self.drawn_at < (0.1 if self.tty else self.interval) or not self.bytes_total:
            return
        self.drawn_at = now
        eta = self.meter.eta(self.bytes_total - self.bytes_done)
        text = (
            f"{100 * self.bytes_done / self.bytes_total:5.1f}% {human_bytes(self.bytes_done)} / "
            f"{human_bytes(self.bytes_total)}  {human_bytes(speed)}/s  ETA {_duration(eta)}"
        )
        if self.tty:
            filled = int(24 * self.bytes_done / self.bytes_total)
            file = progress.current_file[-32:]
            self.out.write(f"\r[{'#' * filled}{'.' * (24 - filled)}] {text}  {file}\x1b[K")
            self.out.flush()
            self.dirty = True
        else:
            print(f"{self.repo_id}: {text}", file=self.out, flush=True)

    def finish(self) -> None:
        total = human_bytes(self.bytes_total)
        self._line(f"{self.repo_id}: 100.0% {total} / {total}")

    def interrupted(self) -> None:
        if self.dirty:
            self.out.write("\n")
            self.out.flush()
            self.dirty = False

    def _line(self, text: str) -> None:
        self.interrupted()
        print(text, file=self.out, flush=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
