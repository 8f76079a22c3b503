"""Run the real mlxui app (`python -m mlxui run`) as a child process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppProcess:
    process: subprocess.Popen
    port: int
    home: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode


def app_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env.update({"MLXUI_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    env.setdefault("MLXUI_OLLAMA_PORT", "0")  # tests never take the real Ollama port; ask for one
    env.update(extra or {})
    return env


def start_app(
    home: Path,
    *,
    port: int | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> AppProcess:
    """Start the app and wait until /healthz answers 200 (raises with the log tail otherwise)."""
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"app-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlxui", "run", "--no-browser", "--port", str(port), *args],
            env=app_env(home, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app = AppProcess(process, port, home, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlxui exited with {process.returncode}:\n{app.log_tail()}")
        try:
            if httpx.get(f"{app.url}/healthz", timeout=2).status_code == 200:
                return app
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    app.stop()
    raise RuntimeError(f"mlxui did not become ready in {timeout} s:\n{app.log_tail()}")


@contextmanager
def running_app(home: Path, **kwargs) -> Iterator[AppProcess]:
    app = start_app(home, **kwargs)
    try:
        yield app
    finally:
        app.stop()


@contextmanager
def module_app(home: Path, hf_cache: Path, env: dict[str, str] | None = None) -> Iterator[AppProcess]:
    """An app kept across a module's tests (its model servers too); at the end every server is
    stopped, then the app. For module-scoped fixtures; `env` adds to the app's environment."""
    from tests.harness import procguard

    with running_app(home, env={"HF_HUB_CACHE": str(hf_cache), **(env or {})}) as app:
        procguard.keep(app.pid)  # it and its servers outlive single tests, by design
        try:
            yield app
        finally:
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
            procguard.release(app.pid)
