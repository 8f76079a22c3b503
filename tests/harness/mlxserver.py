"""Run real `mlx_lm.server` / `mlx_vlm.server` child processes for tests.

A server counts as ready only after a warm-up chat request succeeds: `/health` answers before
the model is loaded, and a bad `--model` keeps the process alive answering 503.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import httpx

ServerKind = Literal["lm", "vlm"]
_MODULES: dict[str, str] = {"lm": "mlx_lm.server", "vlm": "mlx_vlm.server"}


class ServerStartError(RuntimeError):
    """The server exited or never answered a warm-up request; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    """A started server process; `model` is the string to send as the request's `model`."""

    process: subprocess.Popen
    port: int
    model: str
    kind: ServerKind
    log_path: Path
    _log_file: IO[bytes] | None = field(repr=False, default=None)
    _stopped: bool = field(repr=False, default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group (the server's pid), SIGKILL it after `timeout`; return the exit code."""
        if self._stopped:  # signalling again could hit a new process that reused the pid
            return self.process.returncode
        self._stopped = True
        if self.process.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        # Children (e.g. a multiprocessing resource tracker) share the group; make sure none stays.
        _signal_group(self.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    model: Path | str,
    kind: ServerKind = "lm",
    *,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    log_dir: Path | None = None,
) -> RunningServer:
    """Start a server for `model` (a folder or, with HF_HUB_CACHE in `env`, a repo id) and wait until it answers.

    Usable as a context manager: `with start_server(path) as server: ...` stops it on exit.
    """
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="mlxserver-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ)
    child_env.update(env or {})
    if not child_env.get("HF_HUB_CACHE"):
        # /v1/models fails when the HF cache dir does not exist; give it an empty one.
        child_env["HF_HUB_CACHE"] = str(log_dir / "hf-cache")
    Path(child_env["HF_HUB_CACHE"]).mkdir(parents=True, exist_ok=True)
    child_env["HF_HUB_OFFLINE"] = "1"
    child_env["PYTHONUNBUFFERED"] = "1"

    # free_port() can race with another process taking the port; a fresh port fixes that.
    for attempt in range(3):
        try:
            return _launch(str(model), kind, extra_args, child_env, timeout, log_dir)
        except ServerStartError as exc:
            if "address already in use" not in str(exc).lower() or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _launch(
    model: str,
    kind: ServerKind,
    extra_args: Sequence[str],
    env: dict[str, str],
    timeout: float,
    log_dir: Path,
) -> RunningServer:
    port = free_port()
    args = [sys.executable, "-m", _MODULES[kind], "--model", model]
    args += ["--host", "127.0.0.1", "--port", str(port), *extra_args]
    log_path = log_dir / f"{kind}-server-{port}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 -- owned by RunningServer, closed in stop()
    process = subprocess.Popen(
        args, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    server = RunningServer(process, port, model, kind, log_path, log_file)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    body = {"model": server.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    last_problem = "no answer yet"
    with httpx.Client(base_url=server.base_url) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise ServerStartError(f"server exited with code {code}\n{server.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerStartError(
                    f"no successful warm-up in {timeout:.0f} s ({last_problem})\n{server.log_tail()}"
                )
            failure = _failure_line(server.log_path)
            if failure:
                raise ServerStartError(f"server failed to load: {failure}\n{server.log_tail()}")
            try:
                response = client.post("/v1/chat/completions", json=body, timeout=max(remaining, 0.1))
            except httpx.TransportError as exc:  # not listening yet, or reset while loading
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
            time.sleep(0.2)


# Lines with which the servers report that loading failed while the process stays alive.
_FAILURE_MARKERS = ("Traceback (most recent call last)", " - ERROR - ")


def _failure_line(log_path: Path) -> str | None:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:  # not written yet: nothing has failed
        return None
    hits = [line for line in lines if any(marker in line for marker in _FAILURE_MARKERS)]
    return hits[0].strip() if hits else None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The server is its own session leader, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError):  # the group is already gone: nothing to stop
        os.killpg(pid, sig)
