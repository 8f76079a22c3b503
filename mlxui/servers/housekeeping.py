"""The supervisor's 1 Hz tick: sample every server's metrics, read the system's memory pressure,
let running servers teach their memory plans, publish the fleet's memory (`Supervisor.memory`),
and stop servers idle past their limit."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from mlxui.servers.keep_alive import idle_limit, over_idle_limit
from mlxui.servers.memory_budget import effective_budget
from mlxui.servers.model_defaults import display_name
from mlxui.servers.pressure import MemoryPressure, read_pressure
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import RUNNING_STATES

if TYPE_CHECKING:
    from mlxui.servers.supervisor import Supervisor

logger = logging.getLogger(__name__)


class Housekeeper:
    def __init__(self, supervisor: Supervisor, interval: float) -> None:
        self.supervisor = supervisor
        self.interval = interval
        self.pressure: MemoryPressure | None = None  # the last reading (None until the first tick)

    async def run(self) -> None:
        sup = self.supervisor
        while True:
            started = time.monotonic()
            try:
                await sup.sampler.sample(list(sup.servers.values()))
                self.pressure = await asyncio.to_thread(read_pressure)
                self._learn_plans()
                self._publish_memory()
            except Exception:  # a metrics glitch must not end sampling for the rest of the session
                logger.exception("sampling server metrics failed")
            self._stop_idle()
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - started)))

    def _learn_plans(self) -> None:
        """Running servers' peaks teach their memory plans (saved when they grow)."""
        sup = self.supervisor
        for server in sup.servers.values():
            if server.state in RUNNING_STATES:
                record = sup.plans.observe(server)
                server.metrics.reserved_bytes = sup.plans.reserved(server)
                if record is not None:
                    sup.events.spawn(self.save_plan(record))

    def _publish_memory(self) -> None:
        """Write the fleet's memory once per tick; bound fields send only what changed."""
        sup, memory, pressure = self.supervisor, self.supervisor.memory, self.pressure
        memory.budget_bytes = sup.memory_budget()  # the scheduler's budget (tests may replace it)
        memory.budget_source = effective_budget(sup.settings, sup.config)[1]
        memory.planned_bytes = sup.scheduler.planned_bytes()
        running = [s for s in sup.servers.values() if s.state in RUNNING_STATES]
        memory.used_bytes = sum(s.metrics.rss_bytes or 0 for s in running)
        memory.pressure_level = pressure.level if pressure is not None else "normal"
        memory.pressure_reason = pressure.reason if pressure is not None else ""
        memory.waiting = waiting_sentence(sup.scheduler.waiting)

    async def save_plan(self, record: dict[str, Any]) -> None:
        async with self.supervisor.db_lock:
            await self.supervisor.plans.save(record)

    def _stop_idle(self) -> None:
        """Stop servers idle past their limit: a request's keep_alive, else idle_ttl (keep_alive.py)."""
        now = time.monotonic()
        for server in self.supervisor.servers.values():
            if over_idle_limit(server, idle_for(server, now)):
                self.supervisor.events.spawn(self._stop_if_idle(server))

    async def _stop_if_idle(self, server: ManagedServer) -> None:
        # Checked again when the task runs: a request may have arrived (or changed keep_alive) since.
        if over_idle_limit(server, idle_for(server, time.monotonic())):
            logger.info("server %s: unused for over %g s; stopping it", server.name, idle_limit(server))
            await self.supervisor.stop(server.name)


def waiting_sentence(waiting: dict[ManagedServer, str]) -> str:
    """The first start waiting for memory, and why, in one sentence ("" when none waits)."""
    if not waiting:
        return ""
    server, reason = next(iter(waiting.items()))
    more = f" ({len(waiting) - 1} more waiting)" if len(waiting) > 1 else ""
    return f"Starting {display_name(server.profile)}: {reason.rstrip('.')}{more}."


def idle_for(server: ManagedServer, now: float) -> float:
    """Seconds since the server was last used; 0 while a request is in flight."""
    return 0.0 if server.active_requests else now - server.last_used
