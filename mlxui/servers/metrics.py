"""The one metrics sampler: per server process tree RSS and CPU %, GPU, uptime, tokens/s.

The supervisor calls `sample()` once per tick (1 Hz) for all servers; pages never sample. The
psutil and GPU work runs in one worker thread per tick; the bindable fields are written back on
the event loop. `psutil.Process.cpu_percent` measures since its previous call on the same
object, so Process objects are kept between ticks (keyed by pid and start time, so a reused
pid starts afresh); a process seen for the first time has no CPU figure yet (None, not 0).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import psutil

from mlxui.servers.footprint import Footprint, footprint_reader
from mlxui.servers.gpu import GpuReading, GpuSampler
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import ServerState

log = logging.getLogger(__name__)
_MEASURED_STATES = (ServerState.LOADING, ServerState.READY)
_ProcKey = tuple[int, float]  # (pid, create_time)
_AUTO: Any = object()


@dataclass(frozen=True)
class TreeReading:
    pids: frozenset[int]
    rss_bytes: int | None
    cpu_percent: float | None


class MetricsSampler:
    """Holds the Process objects between ticks; not thread-safe (one tick at a time)."""

    def __init__(self, gpu: GpuSampler | None, footprint: Footprint | None = _AUTO) -> None:
        """`footprint` reads a process's memory better than RSS where the OS can (macOS:
        footprint.py); None keeps RSS."""
        self.gpu = gpu
        self.footprint = footprint_reader() if footprint is _AUTO else footprint
        self.gpu_reading: GpuReading | None = None  # the whole machine, for a header tile
        self._procs: dict[_ProcKey, psutil.Process] = {}
        self._primed: set[_ProcKey] = set()
        self._last_tick: float | None = None

    async def sample(self, servers: list[ManagedServer]) -> None:
        now = time.monotonic()
        elapsed = now - self._last_tick if self._last_tick is not None else None
        self._last_tick = now
        targets = {
            s.name: (s.pid, s.create_time)
            for s in servers
            if s.state in _MEASURED_STATES and s.pid is not None and s.create_time is not None
        }
        trees, gpu = await asyncio.to_thread(self._measure, targets)
        self.gpu_reading = gpu
        wall = time.time()
        for server in servers:
            self._apply(server, trees.get(server.name), gpu, elapsed, wall)

    def close(self) -> None:
        if self.gpu is not None:
            self.gpu.close()

    def _apply(
        self,
        server: ManagedServer,
        tree: TreeReading | None,
        gpu: GpuReading | None,
        elapsed: float | None,
        wall: float,
    ) -> None:
        m = server.metrics
        tokens = server.take_stream_tokens()
        # The rate over the last tick: 0 as soon as a tick passes without streamed tokens.
        m.tokens_per_s = tokens / elapsed if tokens and elapsed else 0.0
        if tree is None or server.state not in _MEASURED_STATES:
            return  # stopped: ServerMetrics.clear_live already blanked the live fields
        m.rss_bytes, m.cpu_percent = tree.rss_bytes, tree.cpu_percent
        m.gpu_util, m.gpu_mem_bytes = gpu.for_pids(tree.pids) if gpu is not None else (None, None)
        m.uptime_s = max(0.0, wall - server.create_time) if server.create_time is not None else None
        m.record(wall)

    def _measure(
        self, targets: dict[str, tuple[int | None, float | None]]
    ) -> tuple[dict[str, TreeReading], GpuReading | None]:
        """Runs in a worker thread: psutil reads /proc, NVML and ioreg block."""
        seen: set[_ProcKey] = set()
        trees = {}
        for name, (pid, created) in targets.items():
            assert pid is not None and created is not None
            root = self._process((pid, created), seen)
            if root is not None:
                trees[name] = self._tree((pid, created), root, seen)
        for key in set(self._procs) - seen:  # processes gone or no longer ours
            del self._procs[key]
            self._primed.discard(key)
        gpu = self.gpu.sample() if self.gpu is not None else None
        return trees, gpu

    def _tree(self, root_key: _ProcKey, root: psutil.Process, seen: set[_ProcKey]) -> TreeReading:
        members = [(root_key, root)]
        try:
            children = root.children(recursive=True)
        except psutil.Error:
            children = []  # the root exited during the sweep; reading it below says so
        for child in children:
            try:
                key = (child.pid, child.create_time())
            except psutil.Error as exc:
                log.debug("child %s exited during the sweep: %s", child.pid, exc)
                continue
            cached = self._process(key, seen, child)
            if cached is not None:
                members.append((key, cached))
        rss = 0
        cpu: float | None = 0.0
        pids = set()
        for key, proc in members:
            try:
                with proc.oneshot():
                    held = self.footprint(proc.pid) if self.footprint is not None else None
                    rss += held if held is not None else proc.memory_info().rss
                    percent = proc.cpu_percent(None)
            except psutil.Error as exc:
                log.debug("process %s exited between listing and reading: %s", key[0], exc)
                continue
            pids.add(proc.pid)
            if key not in self._primed:  # the first call only primes the counter
                self._primed.add(key)
                if key == root_key:
                    cpu = None  # no previous reading yet: unknown, not 0
            elif cpu is not None:
                cpu += percent
        return TreeReading(frozenset(pids), rss if pids else None, cpu if pids else None)

    def _process(
        self, key: _ProcKey, seen: set[_ProcKey], proc: psutil.Process | None = None
    ) -> psutil.Process | None:
        cached = self._procs.get(key)
        if cached is None:
            try:
                cached = proc or psutil.Process(key[0])
                if abs(cached.create_time() - key[1]) > 1.0:
                    return None  # the pid now belongs to another process
            except psutil.Error:
                return None
            self._procs[key] = cached
        seen.add(key)
        return cached
