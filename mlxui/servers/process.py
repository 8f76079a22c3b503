"""One managed server process: its state machine, start, readiness, crash watch and stop.

Every state change goes through `ManagedServer._transition`, which checks it against
`TRANSITIONS`, logs it and publishes it. The process is a real `mlx_lm.server` or
`mlx_vlm.server` (or `mlx.launch` and its ranks: group_launch.py) started from an argument list in
its own session (so its pid is its process group id), with its output in a per-profile log file. A server re-adopted after an mlxui restart
is not our child: it is watched and stopped through psutil by pid, never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from huggingface_hub.constants import HF_HUB_CACHE
from nicegui import binding

from mlxui.servers.crash_guard import CrashGuard
from mlxui.servers.group_launch import GroupProcess, ended_message, process_kind, server_command
from mlxui.servers.launch import (
    SERVER_MODULES,
    StartFailure,
    arg_after,
    describe_exit,
    failure_line,
    file_size,
    free_port,
    model_problem,
    open_log,
    port_in_use,
)
from mlxui.servers.logs import LOG_TAIL_LINES, read_log_tail
from mlxui.servers.model_defaults import log_stem
from mlxui.servers.osprocess import ServerProcess
from mlxui.servers.profiles import Profile
from mlxui.servers.state import RUNNING_STATES, ServerMetrics, ServerState

logger = logging.getLogger(__name__)

S = ServerState
TRANSITIONS: dict[ServerState, frozenset[ServerState]] = {
    S.STOPPED: frozenset({S.STARTING, S.LOADING}),  # LOADING: re-adopting a live process
    S.STARTING: frozenset({S.LOADING, S.FAILED, S.STOPPING}),
    S.LOADING: frozenset({S.READY, S.FAILED, S.STOPPING}),
    S.READY: frozenset({S.CRASHED, S.STOPPING}),
    S.FAILED: frozenset({S.STARTING, S.STOPPED}),
    S.CRASHED: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED}),
}
WATCH_INTERVAL_S = 0.25  # how quickly a crash of a ready server is noticed
WARMUP_RETRY_S = 0.2  # after an HTTP error from a loading server
WARMUP_REFUSED_RETRY_S = 0.025  # after a refused connection (cheap for both sides)
ALIVE_CHECK_S = 0.25  # how often a pending warm-up request checks that the server still runs
_PORT_RETRIES = 3  # an auto port can be taken between choosing it and the server binding it


class ServerError(RuntimeError):
    """A server could not be started; the message is the sentence (and log tail) a user sees."""


class ManagedServer:
    """A profile's server and its lifecycle. Fields the UI shows are bindable properties."""

    name = binding.BindableProperty()
    state = binding.BindableProperty()
    pid = binding.BindableProperty()
    port = binding.BindableProperty()
    error = binding.BindableProperty()
    on_demand = binding.BindableProperty()
    kind = binding.BindableProperty()
    upstream_model = binding.BindableProperty()
    note = binding.BindableProperty()  # why it stopped when nobody asked ("Stopped to make room for X")

    def __init__(
        self,
        profile: Profile,
        *,
        logs_dir: Path,
        env: dict[str, str],
        publish: Callable[[ManagedServer, ServerState], None],
    ) -> None:
        self.profile = profile
        self.name = profile.name
        self.kind = profile.kind
        self.upstream_model = profile.model  # the --model argument; mlx_vlm needs it in requests
        self.state = ServerState.STOPPED
        self.pid: int | None = None
        self.port: int | None = None
        self.error: str | None = None
        self.on_demand = False
        self.note: str | None = None
        self.metrics = ServerMetrics()
        self.last_used = time.monotonic()  # plain attributes: written per request, bound by nobody
        self.active_requests = 0
        self.cmdline: list[str] | None = None
        self.create_time: float | None = None  # psutil create_time of pid (identity + uptime)
        self.failed_at: float | None = None  # monotonic time of the last FAILED transition
        self.crash_guard = CrashGuard()  # how often the gateway may still restart it after a crash
        self.keep_alive: float | None = None  # a request's keep_alive (keep_alive.py), until it stops
        self._logs_dir = logs_dir
        self._env = env
        # Where repo ids resolve (the supervisor passes the app's cache); huggingface_hub's own default else.
        self._hf_cache = Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE") else Path(HF_HUB_CACHE)
        self._publish = publish
        self._process: ServerProcess | None = None
        self._log_path: Path | None = None
        self._log_offset = 0
        self._stream_tokens = 0
        self._watcher: asyncio.Task[None] | None = None
        self._ending: asyncio.Task[None] | None = None  # the rest of a group whose rank crashed

    # --- what the gateway and the sampler call -------------------------------------------------

    @property
    def base_url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port is not None else None

    @property
    def log_path(self) -> Path:
        # A running server keeps writing where it started, even if its profile was renamed since.
        if self._log_path is not None and self.state in RUNNING_STATES:
            return self._log_path
        return self._logs_dir / f"{log_stem(self.name)}.log"

    def touch(self) -> None:
        self.last_used = time.monotonic()

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Wrap a proxied request: a server with requests in flight is never stopped as idle."""
        self.active_requests += 1
        self.last_used = time.monotonic()
        try:
            yield
        finally:
            self.active_requests -= 1
            self.last_used = time.monotonic()

    def keep_loaded_for(self, seconds: float) -> None:
        """A request's `keep_alive`: the idle stop uses it instead of the profile's idle_ttl."""
        self.keep_alive = seconds

    def record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.metrics.prompt_tokens_total += prompt_tokens
        self.metrics.completion_tokens_total += completion_tokens
        self.metrics.requests += 1
        self.last_used = time.monotonic()

    def record_stream_tokens(self, n: int) -> None:
        # Called per streamed chunk: keep it to two attribute writes.
        self._stream_tokens += n
        self.last_used = time.monotonic()

    def record_error(self, message: str) -> None:
        self.metrics.last_error = message

    def take_stream_tokens(self) -> int:
        """Tokens streamed since the last call (the sampler turns them into tokens/s)."""
        n, self._stream_tokens = self._stream_tokens, 0
        return n

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server's log file (a small blocking read)."""
        return read_log_tail(self.log_path, lines)

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    # --- lifecycle (the supervisor serialises these per server) ------------------------------

    async def launch(self, ready_timeout: float) -> None:
        """Spawn the server and wait for a successful warm-up; READY, or FAILED + ServerError."""
        self._log_path = self._logs_dir / f"{self.name}.log"
        if self._ending is not None:  # a crashed group's other ranks may still be on their way out
            await asyncio.gather(asyncio.shield(self._ending), return_exceptions=True)
            self._ending = None
        self._transition(ServerState.STARTING)
        self.kind, self.upstream_model = self.profile.kind, self.profile.model
        self.metrics.reset_totals()
        deadline = time.monotonic() + ready_timeout
        try:
            problem = await asyncio.to_thread(model_problem, self.profile, self._hf_cache)
            if problem:
                raise StartFailure(problem)
            for attempt in range(_PORT_RETRIES):
                port = self.profile.port or free_port()
                if self.profile.port and await asyncio.to_thread(port_in_use, port):
                    raise StartFailure(
                        f"Port {port} is in use by another program. Stop that program or give the "
                        "profile another port (or none, to pick a free one)."
                    )
                await self._spawn(port)
                try:
                    await self._wait_ready(deadline)
                    break
                except StartFailure as exc:
                    tail = await self._stop_process_and_read_tail(timeout=2.0)
                    taken = "address already in use" in tail.lower()
                    retry = taken and not self.profile.port
                    if not retry or attempt == _PORT_RETRIES - 1:
                        reason: StartFailure = exc
                        if taken:  # another program bound the port between our check and the server
                            reason = StartFailure(
                                f"Port {port} was taken by another program while the server started. "
                                + ("Stop that program or give the profile another port (or none)."
                                   if self.profile.port else "Try again.")
                            )  # fmt: skip
                        raise StartFailure(f"{reason}\nLast lines of {self.log_path}:\n{tail}") from None
                    logger.info("server %s: port %d was taken meanwhile; trying another", self.name, port)
        except StartFailure as exc:
            self._forget_process()
            self._transition(ServerState.FAILED, error=str(exc).rstrip())
            raise ServerError(str(exc).rstrip()) from None
        except asyncio.CancelledError:
            # Stop or shut-down cancelled the start: a loading server needs no graceful exit.
            if self._process is not None:
                self._process.kill_now()
            self._transition(ServerState.STOPPING)
            self._forget_process()
            self._transition(ServerState.STOPPED)
            raise
        await self._find_ranks()
        self._transition(ServerState.READY)

    async def adopt(self, pid: int, port: int, cmdline: list[str], ready_timeout: float) -> None:
        """Take over a live server a previous mlxui run started; READY after a warm-up answers."""
        process = process_kind(cmdline)(pid)
        if process.create_time is None:
            raise psutil.NoSuchProcess(pid)
        self._process, self._log_path = process, self._logs_dir / f"{self.name}.log"
        self.pid, self.port, self.cmdline, self.create_time = pid, port, cmdline, process.create_time
        self.upstream_model = arg_after(cmdline, "--model") or self.profile.model
        self.kind = "vlm" if SERVER_MODULES["vlm"] in cmdline else "lm"
        self._log_offset = await asyncio.to_thread(file_size, self._log_path)
        self._transition(ServerState.LOADING)
        try:
            await self._wait_ready(time.monotonic() + ready_timeout)
        except StartFailure as exc:
            tail = await self._stop_process_and_read_tail(timeout=5.0)
            message = f"The server left running by the last mlxui session did not answer: {exc}\n{tail}"
            self._forget_process()
            self._transition(ServerState.FAILED, error=message.rstrip())
            raise ServerError(message.rstrip()) from None
        await self._find_ranks()
        self._transition(ServerState.READY)

    async def terminate(self, timeout: float) -> None:
        """SIGTERM the process group, SIGKILL after `timeout`; STOPPED when no process remains."""
        if self.state == ServerState.STOPPED:
            return
        if self.state in (ServerState.FAILED, ServerState.CRASHED):
            self._transition(ServerState.STOPPED)  # nothing runs; the user acknowledged it
            return
        self._transition(ServerState.STOPPING)
        if self._process is not None:
            await self._process.stop(timeout)
        self._forget_process()
        self._transition(ServerState.STOPPED)

    def detach(self) -> None:
        """Stop watching without stopping the process (mlxui quits and keeps servers running)."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self._process is not None:
            self._process.detach()

    # --- the one place where the state changes ----------------------------------------------

    def _transition(self, new: ServerState, *, error: str | None = None) -> None:
        old = self.state
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"server {self.name}: illegal transition {old} -> {new}")
        self.error = error if new in (ServerState.FAILED, ServerState.CRASHED) else None
        if new == ServerState.FAILED:
            self.failed_at = time.monotonic()
        if new == ServerState.CRASHED:
            self.crash_guard.record_crash()
        if new in (ServerState.STOPPED, ServerState.FAILED, ServerState.CRASHED):
            self.metrics.clear_live()
            self.keep_alive = None  # a request's keep_alive lasts while this process runs
        if self._watcher is not None:  # only a READY server is watched
            self._watcher.cancel()
            self._watcher = None
        if new == ServerState.READY:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name=f"watch {self.name}")
        self.state = new
        summary = error.splitlines()[0] if error else ""
        logger.info(
            "server %s: %s -> %s (pid %s, port %s) %s", self.name, old, new, self.pid, self.port, summary
        )
        self._publish(self, old)

    # --- internals ------------------------------------------------------------------------

    async def _spawn(self, port: int) -> None:
        cmd = await server_command(self.profile, port, self._env, self._hf_cache)  # or mlx.launch's
        log, self._log_offset = await asyncio.to_thread(open_log, self.log_path, cmd)
        try:
            self._process = process_kind(cmd).spawn(cmd, log=log, env=self._env, cwd=self._logs_dir)
        except OSError as exc:
            what = cmd[2] if len(cmd[2]) < 40 else "mlx.launch"  # a module, or the launcher's code
            raise StartFailure(f"Could not start {what}: {exc.strerror or exc}") from exc
        finally:
            log.close()  # the child has its own copy of the descriptor
        self.pid, self.port, self.cmdline = self._process.pid, port, cmd
        self.create_time = self._process.create_time
        if self.state == ServerState.STARTING:
            self._transition(ServerState.LOADING)

    async def _wait_ready(self, deadline: float) -> None:
        """Poll a warm-up chat request (max_tokens 1) until it succeeds; the process exiting, an
        error line in its log or the deadline raise StartFailure."""
        body = {
            "model": self.upstream_model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 1,
        }
        last_problem = "no answer yet"
        async with httpx.AsyncClient(base_url=self.base_url or "", trust_env=False) as client:
            while True:
                await self._check_loading()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StartFailure(f"The model did not answer within the start timeout ({last_problem}).")
                try:
                    response = await self._answer_while_alive(
                        client.post("/v1/chat/completions", json=body, timeout=remaining)
                    )
                except httpx.TransportError as exc:  # not listening yet, or reset while loading
                    last_problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    # refused: mlx_lm.server binds only once the model is loaded, so the first
                    # accepted connection is the moment it is ready; ask again soon
                    pause = WARMUP_REFUSED_RETRY_S if isinstance(exc, httpx.ConnectError) else WARMUP_RETRY_S
                else:
                    if response.status_code == 200:
                        return
                    last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
                    pause = WARMUP_RETRY_S
                await asyncio.sleep(pause)

    async def _check_loading(self) -> None:
        """StartFailure when the server exited or its log shows it failed (a server can fail and
        still run: mlx_lm.server's worker thread outlives a failed bind)."""
        if not self.is_alive():
            code = self._process.returncode if self._process else None
            raise StartFailure(f"The server exited while loading ({describe_exit(code)}).")
        problem = await asyncio.to_thread(failure_line, self.log_path, self._log_offset)
        if problem:
            raise StartFailure(f"The server failed to load the model: {problem}")

    async def _answer_while_alive(self, call: Coroutine[Any, Any, httpx.Response]) -> httpx.Response:
        """Await a request to the server, but give up as soon as it has failed: a program that took
        the port first may accept the connection and never answer."""
        request = asyncio.ensure_future(call)
        try:
            while True:
                done, _ = await asyncio.wait({request}, timeout=ALIVE_CHECK_S)
                if done:
                    return request.result()
                await self._check_loading()
        finally:
            if not request.done():
                request.cancel()
                await asyncio.wait({request})

    async def _watch(self) -> None:
        while self.state == ServerState.READY:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self.state == ServerState.READY and not self.is_alive():
                process = self._process
                if isinstance(process, GroupProcess):  # one rank ends the group (the rest at once)
                    self._ending = asyncio.get_running_loop().create_task(process.stop(2.0))
                args = (process, self.pid, self.log_path, self._log_offset)
                message = await asyncio.to_thread(ended_message, *args)
                self._watcher = None  # this task ends here; the transition must not cancel it
                self._forget_process()
                self._transition(ServerState.CRASHED, error=message.rstrip())
                return

    async def _stop_process_and_read_tail(self, timeout: float) -> str:
        if self._process is not None:
            await self._process.stop(timeout)
        return await asyncio.to_thread(read_log_tail, self.log_path, LOG_TAIL_LINES, self._log_offset)

    async def _find_ranks(self) -> None:
        if isinstance(self._process, GroupProcess):  # known once ready: each watch tick checks them
            await asyncio.to_thread(self._process.find_ranks)

    def _forget_process(self) -> None:
        self._process = None
        self.pid = self.port = self.cmdline = self.create_time = None
