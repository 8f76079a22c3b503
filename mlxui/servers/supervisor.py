"""The supervisor: the owner of the fleet. One `ManagedServer` per profile and per local model
without a profile (its implicit default, `model_defaults.py`), the only writer of
profiles (`supervisor.profiles`) and of the fleet's settings (`supervisor.settings`), starts shared
between callers, re-adoption, the idle TTL, the LRU limit and the one 1 Hz metrics sampler.

What happens to running servers when mlxui quits is the setting `on_quit`: "stop" (default) stops
them; "keep" leaves them running, and the next mlxui start re-adopts every one whose pid, start
time and command line still match what was recorded (token counts continue). Records that no
longer match a live process are cleared; that process is not touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from mlxui.config import Config
from mlxui.db.settings import get_setting, set_setting
from mlxui.hub.local import LocalEntry
from mlxui.servers.catalog import LocalCatalog
from mlxui.servers.events import EventHub, Listener
from mlxui.servers.fleet import plan_fleet
from mlxui.servers.gpu import GpuSampler, detect_gpu_sampler
from mlxui.servers.housekeeping import Housekeeper
from mlxui.servers.memory_budget import effective_budget
from mlxui.servers.metrics import MetricsSampler
from mlxui.servers.model_defaults import display_name
from mlxui.servers.names import find_server, known_names
from mlxui.servers.plans import MemoryPlans
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.profiles import Profile, ProfileBook
from mlxui.servers.runs import KEPT_RUNS_SETTING, kept_counters, model_run_records, readopt, save_run_record
from mlxui.servers.scheduler import MemoryScheduler
from mlxui.servers.settings import ServerSettings
from mlxui.servers.state import RUNNING_STATES, MemoryState, ServerEvent, ServerState, UnknownProfile

logger = logging.getLogger(__name__)

FAILED_RETRY_S = 30.0  # ensure_ready does not retry a failed start sooner (each try may load for minutes)
LRU_GRACE_S = 5.0  # a server used this recently is busy, not idle: never stopped to make room
_AUTO_GPU: Any = object()
_ENDED = (ServerState.STOPPED, ServerState.FAILED, ServerState.CRASHED)


class Supervisor:
    def __init__(
        self,
        config: Config,
        *,
        sampler_interval: float = 1.0,
        stop_timeout: float = 10.0,
        ready_timeout: float = 120.0,
        gpu: GpuSampler | None = _AUTO_GPU,
    ) -> None:
        self.config = config
        self.sampler_interval = sampler_interval
        self.stop_timeout = stop_timeout
        self.ready_timeout = ready_timeout
        self.settings = ServerSettings()
        self.profiles = ProfileBook(
            config, on_change=self._sync_profiles, default_idle_ttl=lambda: self.settings.default_idle_ttl
        )
        self.servers: dict[str, ManagedServer] = {}
        self.catalog = LocalCatalog(config.hf_cache)  # the local models, as of the last scan
        self.sampler = MetricsSampler(detect_gpu_sampler() if gpu is _AUTO_GPU else gpu)
        self.events = EventHub()
        self.housekeeper = Housekeeper(self, sampler_interval)
        self.memory = MemoryState()  # budget, planned, used, pressure, waiting: the housekeeper's tick
        self.plans = MemoryPlans(self.local_entry)
        self.scheduler = MemoryScheduler(
            servers=lambda: self.servers.values(), plans=self.plans, budget=lambda: self.memory_budget(),
            max_running=lambda: self.settings.max_running, evict=self._evict,
            pressure=lambda: self.housekeeper.pressure,
        )  # fmt: skip
        self._starts: dict[ManagedServer, asyncio.Task[ManagedServer]] = {}
        self._locks: dict[ManagedServer, asyncio.Lock] = {}
        self.db_lock = asyncio.Lock()  # run-record writes land in the order of the transitions
        self._sync_lock = asyncio.Lock()  # one fleet rebuild at a time
        self._saved_model_runs: dict[str, dict[str, Any]] = {}  # read once at start-up
        self._sampler_task: asyncio.Task[None] | None = None
        self._env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",  # servers load what is on disk; downloads are mlxui's job
            "HF_HUB_CACHE": str(config.hf_cache),
            "PYTHONUNBUFFERED": "1",  # log lines arrive while they happen (load errors, tracebacks)
        }

    # --- life of the app ------------------------------------------------------------------

    async def start_up(self) -> None:
        """Load profiles, re-adopt live servers, clear stale records, autostart, start sampling."""
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        self.config.hf_cache.mkdir(parents=True, exist_ok=True)  # /v1/models fails without it
        await self.settings.load()
        await self.plans.load()
        kept: dict[str, dict[str, Any]] = await get_setting(KEPT_RUNS_SETTING, None) or {}
        if kept:
            await set_setting(KEPT_RUNS_SETTING, {})
        self._saved_model_runs = await model_run_records()
        await self._sync_profiles()
        self._saved_model_runs = {}
        profiles = [s.profile for s in self.servers.values()]
        recorded = [p for p in profiles if p.run_pid is not None]
        await asyncio.gather(*(self._adopt_or_clear(p, kept.get(p.name, {})) for p in recorded))
        for profile in profiles:
            if profile.autostart and self.servers[profile.name].state == ServerState.STOPPED:
                self._begin_start(self.servers[profile.name], on_demand=False)
        self._sampler_task = asyncio.get_running_loop().create_task(
            self.housekeeper.run(), name="server metrics"
        )

    async def shut_down(self, stop_servers: bool | None = None) -> None:
        """Stop sampling and either stop every server or leave them running for re-adoption.

        `stop_servers=None` follows the setting `on_quit` ("stop" unless it says "keep").
        """
        if stop_servers is None:
            stop_servers = self.settings.on_quit != "keep"
        if self._sampler_task is not None:
            self._sampler_task.cancel()
            await asyncio.gather(self._sampler_task, return_exceptions=True)
            self._sampler_task = None
        starting = list(self._starts.values())  # a half-started server is stopped either way
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        if stop_servers:
            await asyncio.gather(
                *(self.stop(s.name) for s in list(self.servers.values()) if s.state in RUNNING_STATES)
            )
        else:
            kept = {}
            for server in self.servers.values():
                if server.state == ServerState.READY:
                    server.detach()
                    kept[server.name] = kept_counters(server)
                    logger.info(
                        "server %s keeps running (pid %s) for the next mlxui start", server.name, server.pid
                    )
            await set_setting(KEPT_RUNS_SETTING, kept)
        await self.events.drain()  # pending run-record writes
        self.sampler.close()

    # --- servers -----------------------------------------------------------------------------

    def get(self, name: str) -> ManagedServer | None:
        return self.servers.get(name)

    def find_by_model(self, model: str) -> ManagedServer | None:
        """The server for a request's `model`: a profile name (any case), or a name of a model
        only one server has: its repo id or folder path, its short name or folder name (names.py)."""
        return find_server(self.servers, model)

    def model_names(self) -> list[str]:
        """Every name a request may use (for "did you mean" hints)."""
        return known_names(self.servers)

    def fleet(self, *, every_model: bool = False) -> list[ManagedServer]:
        """The servers a user manages, by name: every profile's, and a local model's while it runs
        or after it failed (`every_model`: the stopped local models too)."""
        return [
            server
            for _, server in sorted(self.servers.items())
            if every_model or not server.profile.implicit or server.state != ServerState.STOPPED
        ]

    def memory_budget(self) -> int:
        """Bytes all running servers may plan to hold together (docs/architecture.md §9)."""
        return effective_budget(self.settings, self.config)[0]

    def local_entry(self, server: ManagedServer) -> LocalEntry | None:
        """The local model a server runs, as of the last refresh (capabilities, memory plan)."""
        return self.catalog.entries.get(server.profile.model)

    async def refresh_models(self, max_age: float = 0.0) -> None:
        """The local models changed (a download finished, a folder was added or removed, a cached
        model deleted): models without a profile appear or go. A running one stays until stopped.
        With `max_age`, a refresh newer than that many seconds is good enough."""
        if max_age and self.catalog.fresh(max_age):
            return
        await self._sync_profiles()

    async def lookup(self, model: str) -> ManagedServer | None:
        """`find_by_model`, after a refresh when the name is unknown: a model just put in the cache
        by another tool, or a folder added by `mlxui models add`, answers at once."""
        server = self.find_by_model(model)
        if server is None and self.catalog.may_rescan_for(model):
            await self.refresh_models()
            server = self.find_by_model(model)
        return server

    async def start(self, name: str, *, on_demand: bool = False, force: bool = False) -> ManagedServer:
        """Start `name` and return it once READY; raises ServerError (with the log tail) on failure,
        AdmissionRefused when it cannot fit the memory budget (`force`: start it anyway). A user's
        start also resets the crash loop guard (crash_guard.py)."""
        server = self._require(name)
        server.crash_guard.reset()
        if server.state == ServerState.READY:
            server.on_demand = server.on_demand and on_demand  # a user's start makes it stay
            return server
        task = self._starts.get(server) or self._begin_start(server, on_demand, force=force)
        return await _shared(task, None)

    async def ensure_ready(self, name: str, timeout: float | None = None) -> ManagedServer:
        """For the gateway: READY now, or started on demand (one start shared by all callers).

        Raises UnknownProfile, ServerError (a failed start, also a recent one: it is not retried
        for FAILED_RETRY_S; a crash loop: crash_guard.py) or TimeoutError (still loading after
        `timeout`; the start goes on). A CRASHED server is started again.
        """
        server = self.find_by_model(name)
        if server is None:
            raise UnknownProfile(name)
        server.touch()
        if server.state == ServerState.READY:
            return server
        task = self._starts.get(server)
        if task is None:
            recent = server.failed_at is not None and time.monotonic() - server.failed_at < FAILED_RETRY_S
            if server.state == ServerState.FAILED and recent:
                raise ServerError(server.error or f"The server {server.name} failed to start.")
            if not server.crash_guard.may_restart():
                raise ServerError(server.crash_guard.refusal(server.name))
            crashed = server.state == ServerState.CRASHED  # restarted as it was started: on demand or not
            task = self._begin_start(server, on_demand=server.on_demand if crashed else True)
        try:
            return await _shared(task, timeout)
        except TimeoutError:
            raise TimeoutError(f"The server {server.name} is still loading after {timeout:g} s.") from None

    async def stop(self, name: str) -> None:
        """SIGTERM, then SIGKILL after stop_timeout; returns when no process of its tree remains."""
        server = self._require(name)
        start = self._starts.get(server)
        if start is not None:
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
        async with self._lock(server):
            await server.terminate(self.stop_timeout)

    async def restart(self, name: str) -> ManagedServer:
        """Stop and start again: a new process (new pid)."""
        await self.stop(name)
        return await self.start(name)

    def on_change(self, callback: Listener) -> Callable[[], None]:
        """Call `callback(ServerEvent)` when a server is added, removed or changes state.

        Returns a function that unsubscribes (call it when the component is deleted).
        """
        return self.events.subscribe(callback)

    async def _sync_profiles(self) -> None:
        """After every profile write (the book calls it) and every change of the local models:
        new profiles and models appear, deleted profiles are stopped and removed, edited ones apply
        at their next start. A model gets its implicit server only while no profile uses it; when a
        profile is saved for a model whose implicit server runs, that server becomes the profile's."""
        async with self._sync_lock:
            profiles = await self.profiles.all()
            entries = await self.catalog.scan()
            plan = plan_fleet(
                self.servers.values(), profiles, entries, new_server=self._new_server,
                idle_ttl=self.settings.default_idle_ttl, saved_runs=self._saved_model_runs,
            )  # fmt: skip
            for server in plan.handed_over:
                self.events.spawn(self._hand_over(server))
            for server in plan.gone:
                if server.state in RUNNING_STATES:
                    await self.stop(server.name)
            self.servers = plan.servers
            for server in plan.gone:
                self._locks.pop(server, None)
                self.events.emit(ServerEvent("removed", server))
            for server in plan.added:
                self.events.emit(ServerEvent("added", server))

    async def _hand_over(self, server: ManagedServer) -> None:
        """A running implicit server now belongs to a profile: move its run record there."""
        async with self.db_lock:
            await save_run_record(dataclasses.replace(server.profile, implicit=True), None)
            await save_run_record(server.profile, server if server.pid is not None else None)

    # --- internals ------------------------------------------------------------------------

    def _require(self, name: str) -> ManagedServer:
        server = self.find_by_model(name)
        if server is None:
            raise UnknownProfile(name)
        return server

    def _new_server(self, profile: Profile) -> ManagedServer:
        return ManagedServer(
            profile, logs_dir=self.config.logs_dir, env=self._env, publish=self._on_transition
        )

    def _lock(self, server: ManagedServer) -> asyncio.Lock:
        return self._locks.setdefault(server, asyncio.Lock())

    def _begin_start(
        self, server: ManagedServer, on_demand: bool, *, force: bool = False
    ) -> asyncio.Task[ManagedServer]:
        task = asyncio.get_running_loop().create_task(
            self._run_start(server, on_demand, force), name=f"start {server.name}"
        )
        self._starts[server] = task

        def finished(done: asyncio.Task[ManagedServer]) -> None:
            if self._starts.get(server) is done:
                del self._starts[server]
            if not done.cancelled() and done.exception() is not None:  # shown as FAILED already
                logger.debug("start of %s failed: %s", server.name, done.exception())

        task.add_done_callback(finished)
        return task

    async def _run_start(self, server: ManagedServer, on_demand: bool, force: bool) -> ManagedServer:
        async with self._lock(server):
            if server.state == ServerState.READY:
                return server
            server.on_demand = on_demand
            server.note = None
            try:
                await self.scheduler.admit(server, force=force)  # may stop idle servers, or wait its turn
            except ServerError as exc:  # refused or waited too long: say why where the server shows
                server.note = str(exc)
                raise
            await server.launch(self.ready_timeout)
            server.touch()
            return server

    async def _evict(self, victim: ManagedServer, newcomer: ManagedServer) -> None:
        """Stop an idle server to make room (the scheduler chose it); say so everywhere."""
        note = f"Stopped to make room for {display_name(newcomer.profile)}"
        logger.info(
            "stopping %s, the least recently used idle server, to make room for %s",
            victim.name,
            newcomer.name,
        )
        await asyncio.shield(self.stop(victim.name))  # a cancelled start must not leave it half-stopped
        victim.note = note
        victim.metrics.evictions += 1
        self.events.emit(ServerEvent("evicted", victim, note=note))

    async def _adopt_or_clear(self, profile: Profile, kept: dict[str, Any]) -> None:
        server = self.servers[profile.name]
        async with self._lock(server):  # a stop meanwhile waits for the adoption's outcome
            if not await readopt(server, profile, kept, timeout=min(self.ready_timeout, 30.0)):
                await self._write_run(profile, None)

    def _on_transition(self, server: ManagedServer, previous: ServerState) -> None:
        """Every transition of every server passes here: persist the run record, tell listeners."""
        loading = server.state == ServerState.LOADING and previous == ServerState.STARTING
        if loading or server.state == ServerState.READY:
            # Recorded while loading too, so a server is never left running without a record.
            self.events.spawn(self._write_run(server.profile, server))
        elif server.state in _ENDED and previous not in _ENDED:  # (ended -> STOPPED: cleared already)
            self.events.spawn(self._write_run(server.profile, None))
            record = self.plans.end_run(
                server, completed=previous in (ServerState.READY, ServerState.STOPPING)
            )
            if record is not None:
                self.events.spawn(self.housekeeper.save_plan(record))
        if server.state not in (ServerState.STARTING, ServerState.LOADING):
            self.scheduler.notify()  # a server that stopped, failed or got ready may make room
        self.events.emit(ServerEvent("state", server, previous))

    async def _write_run(self, profile: Profile, server: ManagedServer | None) -> None:
        async with self.db_lock:
            await save_run_record(profile, server)


async def _shared(task: asyncio.Task[ManagedServer], timeout: float | None) -> ManagedServer:
    """Wait for a start that other callers share: leaving early (a timeout, this caller being
    cancelled) does not cancel it, and a start cancelled by `stop` is an error, not our cancel."""
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout)
    except asyncio.CancelledError:
        me = asyncio.current_task()
        if task.cancelled() and not (me is not None and me.cancelling()):
            raise ServerError("The server was stopped while it was starting.") from None
        raise
