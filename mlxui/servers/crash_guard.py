"""The crash loop guard: how often a crashed server may be restarted by the next gateway request.

A server that died while ready (CRASHED) is started again by the next request that needs it, at
most `MAX_AUTO_RESTARTS` times within `CRASH_WINDOW_S`. The crash after those (the 4th in 5
minutes by default) trips the guard: the server stays down, with its log tail in `error`, until a
user starts it (`Supervisor.start`, from the UI, the CLI or the API), which resets the guard.
Each `ManagedServer` holds one guard (docs/architecture.md §4).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

CRASH_WINDOW_S = 300.0
MAX_AUTO_RESTARTS = 3


class CrashGuard:
    """Crash times of one server within the window, and whether automatic restarts stopped."""

    def __init__(
        self,
        *,
        window_s: float = CRASH_WINDOW_S,
        max_restarts: int = MAX_AUTO_RESTARTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_restarts = max_restarts
        self._clock = clock
        self._crashes: deque[float] = deque()
        self.tripped = False  # sticky: only `reset` (a user's start) clears it

    def record_crash(self) -> None:
        """The server died while ready: one more crash in the window; trips after too many."""
        now = self._clock()
        self._crashes.append(now)
        self._forget_before(now - self.window_s)
        if len(self._crashes) > self.max_restarts:
            self.tripped = True

    def crashes(self) -> int:
        """Crashes within the window, as of now."""
        self._forget_before(self._clock() - self.window_s)
        return len(self._crashes)

    def may_restart(self) -> bool:
        return not self.tripped

    def reset(self) -> None:
        """A user started the server: the history starts over."""
        self._crashes.clear()
        self.tripped = False

    def refusal(self, name: str) -> str:
        """Why the server stays down, for the gateway's 503."""
        minutes = self.window_s / 60
        return (
            f"{name} crashed {self.max_restarts + 1} times in {minutes:g} minutes; "
            "it stays stopped until you start it: see its log."
        )

    def _forget_before(self, cutoff: float) -> None:
        while self._crashes and self._crashes[0] < cutoff:
            self._crashes.popleft()
