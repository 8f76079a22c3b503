"""Memory plans: how many bytes each server is expected to take, learned from what it really took.

Before a model's first start its plan is the estimate (weights + KV cache at the default context +
runtime overhead, `hub/memory.py`). While it runs, the 1 Hz sampler reports its process tree's
memory; the highest reading is its measured peak, and from then on the plan is that peak,
remembered per server (profile, or model without a profile) and model in the setting
`servers.memory_plans`, so the next start is planned from a measurement, not a guess. A peak is
saved when it first appears, when it grows by more than `SAVE_GROWTH`, and when the server stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mlxui.db.settings import get_setting, set_setting
from mlxui.hub.local import LocalEntry
from mlxui.servers.distributed import local_share
from mlxui.servers.process import ManagedServer

log = logging.getLogger(__name__)

PLANS_SETTING = "servers.memory_plans"  # {server name: {"model": reference, "peak_bytes": n}}
SAVE_GROWTH = 0.05
UNKNOWN_PLAN_BYTES = 1024**3  # a model whose size nothing tells (no weights found): assume 1 GiB


class MemoryPlans:
    def __init__(self, local_entry: Callable[[ManagedServer], LocalEntry | None]) -> None:
        self._local_entry = local_entry
        self._saved: dict[str, dict[str, Any]] = {}
        self._peaks: dict[ManagedServer, int] = {}  # this run's peak per running server

    async def load(self) -> None:
        stored = await get_setting(PLANS_SETTING, None)
        self._saved = dict(stored) if isinstance(stored, dict) else {}

    def estimate(self, server: ManagedServer) -> int:
        entry = self._local_entry(server)
        if entry is None or not entry.estimate.weights_known:
            return UNKNOWN_PLAN_BYTES
        return int(entry.estimate.total_bytes * local_share(server.profile))  # distributed: this Mac's part

    def measured(self, server: ManagedServer) -> int | None:
        """The peak remembered for this server's current model, if it ever ran."""
        saved = self._saved.get(server.name)
        if saved and saved.get("model") == server.profile.model and isinstance(saved.get("peak_bytes"), int):
            return int(saved["peak_bytes"])
        return None

    def plan(self, server: ManagedServer) -> int:
        """Bytes to reserve for a start: the measured peak if there is one, else the estimate."""
        return max(self.measured(server) or self.estimate(server), self._peaks.get(server, 0))

    def reserved(self, server: ManagedServer) -> int:
        """What a running server holds now: its plan, or more if it already uses more."""
        return max(self.plan(server), server.metrics.rss_bytes or 0)

    def observe(self, server: ManagedServer) -> dict[str, Any] | None:
        """After a sample: a new peak worth saving (a record for `save`), or None."""
        used = server.metrics.rss_bytes
        if not used or used <= self._peaks.get(server, 0):
            return None
        self._peaks[server] = used
        known = self.measured(server)
        if known is None or used > known * (1 + SAVE_GROWTH):
            return self._record(server, used)
        return None

    def end_run(self, server: ManagedServer, *, completed: bool) -> dict[str, Any] | None:
        """The server stopped. After a run that got ready, its peak is the plan from now on (also
        when it is lower: a smaller context, a lighter model); a failed load teaches nothing."""
        peak = self._peaks.pop(server, None)
        if not peak or not completed or peak == self.measured(server):
            return None
        return self._record(server, peak)

    def remember(self, name: str, model: str, peak_bytes: int) -> None:
        """Take a plan as if it had been measured (not saved): for tests that need plans of a
        known size, whatever this machine's servers really use."""
        self._saved[name] = {"model": model, "peak_bytes": int(peak_bytes)}

    async def save(self, record: dict[str, Any]) -> None:
        self._saved.update(record)
        await set_setting(PLANS_SETTING, self._saved)

    def _record(self, server: ManagedServer, peak: int) -> dict[str, Any]:
        return {server.name: {"model": server.profile.model, "peak_bytes": peak}}
