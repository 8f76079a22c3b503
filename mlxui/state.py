"""State objects the UI binds to. Services write them; components bind to their fields.

Every field is a NiceGUI bindable property: setting it pushes the new value to bound elements at
once (only when it changed), so pages never poll. Membership changes (a download added or
removed) are announced by the owning service's listeners; lists are rebuilt only then.
"""

from __future__ import annotations

from typing import Literal

from nicegui import binding

DownloadPhase = Literal["queued", "downloading", "paused", "failed", "done", "cancelled"]
ACTIVE_PHASES: tuple[str, ...] = ("queued", "downloading")


@binding.bindable_dataclass
class DownloadState:
    """One model download, as the Downloads list shows it. Written by `DownloadManager` only."""

    repo_id: str
    revision: str = "main"
    state: str = "queued"  # one of DownloadPhase
    bytes_done: int = 0
    bytes_total: int = 0  # 0 until the file list is known
    speed_bps: float = 0.0  # smoothed (EWMA); 0 when not transferring
    eta_s: float | None = None  # None when unknown
    current_file: str = ""
    files_done: int = 0
    files_total: int = 0
    error: str | None = None  # a sentence for the user when state == "failed"
    note: str = ""  # passing news while downloading, e.g. "The connection dropped. Retrying in 2 s ..."
    commit: str | None = None  # the commit being downloaded, once known
    connections: int = 0  # connections fetching now (ranges of large files, several files at once)
    limit_bps: int = 0  # this download's own bandwidth limit; 0: only the global one applies

    @property
    def fraction(self) -> float:
        """0.0 .. 1.0 (1.0 when done); computed, so bind to bytes_done and read this in the transform."""
        if self.state == "done":
            return 1.0
        return min(1.0, self.bytes_done / self.bytes_total) if self.bytes_total else 0.0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_PHASES
