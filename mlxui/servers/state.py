"""What the UI binds to for servers: the state enum, live metrics with history, change events.

`ServerMetrics` is written by the one process-wide sampler (and the gateway's usage counts);
its fields are NiceGUI bindable properties, so a tile bound to them updates without polling.
The history deques are plain attributes: charts read them when the sampler's tick arrives.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from nicegui import binding

if TYPE_CHECKING:
    from mlxui.servers.process import ManagedServer

HISTORY_SECONDS = 300.0  # five minutes per series
HISTORY_SERIES = ("rss_bytes", "cpu_percent", "gpu_util", "gpu_mem_bytes", "tokens_per_s")


class ServerState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"  # checking the port, spawning the process
    LOADING = "loading"  # the process runs; waiting for a successful warm-up request
    READY = "ready"
    FAILED = "failed"  # never became ready: `error` has the exit code and log tail
    CRASHED = "crashed"  # died while ready
    STOPPING = "stopping"


# States in which a process of ours is (or may be) alive.
RUNNING_STATES = frozenset(
    {ServerState.STARTING, ServerState.LOADING, ServerState.READY, ServerState.STOPPING}
)


def _history() -> dict[str, deque[tuple[float, float | None]]]:
    # Sized for the 1 Hz sampler (a faster one, as in tests, keeps a shorter span).
    return {name: deque(maxlen=int(HISTORY_SECONDS) + 1) for name in HISTORY_SERIES}


@binding.bindable_dataclass(
    bindable_fields=[
        "rss_bytes",
        "reserved_bytes",
        "cpu_percent",
        "gpu_util",
        "gpu_mem_bytes",
        "tokens_per_s",
        "prompt_tokens_total",
        "completion_tokens_total",
        "requests",
        "last_error",
        "uptime_s",
        "tick",
    ]
)
class ServerMetrics:
    """Live numbers of one server. None means unknown ("n/a"), never a stand-in 0."""

    rss_bytes: int | None = None  # resident memory of the whole process tree
    cpu_percent: float | None = None  # of one core, summed over the tree (can exceed 100)
    gpu_util: float | None = None  # device utilisation, percent
    gpu_mem_bytes: int | None = None
    tokens_per_s: float = 0.0  # streamed tokens during the last sampler tick
    prompt_tokens_total: int = 0  # since this server run started (continues across re-adoption)
    completion_tokens_total: int = 0
    requests: int = 0
    evictions: int = 0  # times it was stopped to make room for another model (this mlxui session)
    reserved_bytes: int | None = None  # its memory plan while it runs (servers/plans.py)
    last_error: str | None = None
    uptime_s: float | None = None
    tick: int = 0  # +1 per sample: charts bind to it and redraw from `history`, no timer of their own
    history: dict[str, deque[tuple[float, float | None]]] = field(default_factory=_history)

    def record(self, now: float | None = None) -> None:
        """Append the current values to the history (the sampler calls this once per tick)."""
        now = time.time() if now is None else now
        for name in HISTORY_SERIES:
            self.history[name].append((now, getattr(self, name)))
        self.tick += 1

    def clear_live(self) -> None:
        """Forget what describes a running process (the server stopped); totals are kept."""
        self.rss_bytes = self.cpu_percent = self.gpu_util = self.gpu_mem_bytes = None
        self.uptime_s = self.reserved_bytes = None
        self.tokens_per_s = 0.0

    def reset_totals(self) -> None:
        """A new run starts counting from zero."""
        self.prompt_tokens_total = self.completion_tokens_total = self.requests = 0
        self.last_error = None


@binding.bindable_dataclass
class MemoryState:
    """The fleet's memory at the last sampler tick (`Housekeeper` writes it once per tick;
    `Supervisor.memory`): the footer and the Servers page bind to it (docs/architecture.md §8, §9)."""

    budget_bytes: int = 0  # the budget in force (memory_budget.effective_budget)
    budget_source: str = ""  # "environment", "setting" or "default: …"
    planned_bytes: int = 0  # the running servers' plans (or their use, where higher)
    used_bytes: int = 0  # what the running servers' process trees use now
    pressure_level: str = "normal"  # "normal" | "warn" | "critical" (servers/pressure.py)
    pressure_reason: str = ""  # one sentence ("The system is short of memory (…).")
    waiting: str = ""  # a start waiting for memory, in one sentence; "" when none waits


@dataclass(frozen=True)
class ServerEvent:
    """What `Supervisor.on_change` listeners receive.

    kind "added"/"removed": the list of servers changed (rebuild it); "state": `server.state`
    changed from `previous` (bound fields already update themselves; this is for lists that
    group servers by state); "evicted": it was stopped to make room for another model (`note`).
    """

    kind: Literal["added", "removed", "state", "evicted"]
    server: ManagedServer
    previous: ServerState | None = None
    note: str | None = None  # "evicted": the sentence to show ("Stopped to make room for X")


class UnknownProfile(KeyError):
    """No profile has this name (or model id)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"There is no model or profile named {self.name!r}."
