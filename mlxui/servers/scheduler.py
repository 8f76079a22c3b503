"""Admission: a server starts only when its memory plan fits the budget (docs/architecture.md §8).

Every start (UI, CLI, API, a gateway request) passes `MemoryScheduler.admit` before it spawns:

- It fits when the plans of the servers already running plus its own plan stay within the budget,
  the "most servers running" setting allows one more, and the system is not short of memory.
- Otherwise idle servers are stopped, least recently used first, until it fits. Idle means ready
  and no request in flight: a server is never stopped mid-answer. A pinned profile ("keep loaded")
  is never stopped.
- When only busy or loading servers stand in the way, the start waits its turn: waiters form one
  first-come queue, and only the head of the queue may evict or start, so a later small request
  cannot overtake an earlier large one. The wait is bounded (`AdmissionTimeout`, which the gateway
  answers with 503 and Retry-After).
- A model whose plan exceeds the whole budget, or that only pinned servers keep out, is refused at
  once with a sentence (`AdmissionRefused`), unless the user forces the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from mlxui.servers.memory_budget import format_size  # binary, as the budget is typed (§9)
from mlxui.servers.model_defaults import display_name
from mlxui.servers.plans import MemoryPlans
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.state import RUNNING_STATES, ServerState

log = logging.getLogger(__name__)

ADMISSION_WAIT_S = 120.0  # how long a start waits for busy servers to finish before giving up
RECHECK_S = 1.0  # waiting starts look again at least this often (memory pressure changes unseen)


class AdmissionRefused(ServerError):
    """The model cannot be started within the memory budget (the message says why and what to do)."""


class AdmissionTimeout(ServerError):
    """Still no room after the bounded wait; the message says what it waited for."""


class Pressure(Protocol):
    level: str  # "normal" | "warn" | "critical"
    reason: str


Evict = Callable[[ManagedServer, ManagedServer], Awaitable[None]]  # (victim, for whom)


class MemoryScheduler:
    def __init__(
        self,
        *,
        servers: Callable[[], Iterable[ManagedServer]],
        plans: MemoryPlans,
        budget: Callable[[], int],
        max_running: Callable[[], int | None],
        evict: Evict,
        pressure: Callable[[], Pressure | None] = lambda: None,
        wait_s: float = ADMISSION_WAIT_S,
    ) -> None:
        self._servers = servers
        self.plans = plans
        self.budget = budget
        self._max_running = max_running
        self._evict = evict
        self._pressure = pressure
        self.wait_s = wait_s
        self._queue: deque[object] = deque()
        self._changed = asyncio.Event()
        self.waiting: dict[ManagedServer, str] = {}  # starts waiting now, and why (for the UI)

    def notify(self) -> None:
        """Something that may make room happened: a request ended, a server stopped or failed."""
        self._changed.set()

    def planned_bytes(self, exclude: ManagedServer | None = None) -> int:
        """The memory held by running servers, by plan (or by use, where use is higher)."""
        return sum(self.plans.reserved(s) for s in self._running(exclude))

    async def admit(self, server: ManagedServer, *, force: bool = False) -> None:
        """Return when `server` may start (after stopping idle servers if needed).

        Raises AdmissionRefused (never fits, or only pinned servers are in the way) or
        AdmissionTimeout (busy servers did not finish within `wait_s`)."""
        need, budget = self.plans.plan(server), self.budget()
        if need > budget and not force:
            raise AdmissionRefused(
                f"{display_name(server.profile)} needs ~{format_size(need)}, and the memory budget is "
                f"{format_size(budget)}: lower its context or raise the budget in Settings."
            )
        ticket = object()
        self._queue.append(ticket)
        deadline = asyncio.get_running_loop().time() + self.wait_s
        try:
            while True:
                self._changed.clear()
                if self._queue[0] is ticket:
                    blocker = self._blocker(server, need, budget, force)
                    if blocker is None:
                        return
                    if isinstance(blocker, ManagedServer):
                        await self._evict(blocker, server)
                        continue
                    self.waiting[server] = blocker
                else:
                    self.waiting[server] = "waiting for an earlier start to get its memory"
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise AdmissionTimeout(
                        f"{display_name(server.profile)} could not start within {self.wait_s:g} s: "
                        f"{self.waiting[server]}."
                    )
                # Look again at least every RECHECK_S: memory pressure changes without a signal.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, RECHECK_S))
        finally:
            self._queue.remove(ticket)
            self.waiting.pop(server, None)
            self.notify()  # the next in line may go now

    # --- internals ----------------------------------------------------------------------------
    def _running(self, exclude: ManagedServer | None) -> list[ManagedServer]:
        return [s for s in self._servers() if s is not exclude and s.state in RUNNING_STATES]

    def _blocker(
        self, server: ManagedServer, need: int, budget: int, force: bool
    ) -> ManagedServer | str | None:
        """None: it fits. A server: stop that one to make room. A sentence: wait, for this reason."""
        running = self._running(server)
        limit = self._max_running()
        too_many = bool(limit) and len(running) >= (limit or 0)
        held = sum(self.plans.reserved(s) for s in running)
        too_big = not force and held + need > budget
        pressure = self._pressure()
        short = pressure is not None and pressure.level == "critical"
        if not (too_many or too_big or short):
            return None
        idle = [s for s in running if _evictable(s)]
        if idle:
            return min(idle, key=lambda s: s.last_used)
        if short and not running:
            return None  # nothing of ours to give back: starting is the user's call
        busy = [s for s in running if not _pinned(s)]
        if not busy and not short:
            pinned = ", ".join(display_name(s.profile) for s in running)
            raise AdmissionRefused(
                f"{display_name(server.profile)} needs ~{format_size(need)}; {format_size(held)} of the "
                f"{format_size(budget)} budget is held by {pinned}, kept loaded (pinned): unpin it or "
                "raise the budget in Settings."
            )
        if short and not too_big and not too_many:
            assert pressure is not None
            return pressure.reason
        names = ", ".join(display_name(s.profile) for s in busy) or "the running servers"
        return f"waiting for {names} to finish (memory budget {format_size(budget)})"


def _pinned(server: ManagedServer) -> bool:
    return bool(getattr(server.profile, "pinned", False))


def _evictable(server: ManagedServer) -> bool:
    return server.state == ServerState.READY and not server.active_requests and not _pinned(server)
