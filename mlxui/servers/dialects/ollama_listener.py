"""The Ollama API's own listener: a second uvicorn server in the app's event loop, on port 11434
unless the setting `ollama_port` or `MLXUI_OLLAMA_PORT` (which wins) says otherwise; 0 turns it off.

When the port is taken (Ollama itself runs, say), mlxui runs on without it, logs why and keeps the
sentence in `note`, which the Settings card and `/api/status` show. A change of the setting
applies at once (`apply`). The listener binds the app's own address and the Host/Origin guard
(`mlxui.security`) wraps it as it wraps the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import uvicorn
from nicegui import binding

from mlxui.security import HostOriginGuard, HostPolicy
from mlxui.servers.cors import CorsPolicy, GatewayCors
from mlxui.servers.dialects.ollama import OllamaApi

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 3.0


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the app's own server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OllamaListener:
    """Starts, stops and re-binds the Ollama API's uvicorn server; `port` is where it listens
    (None: it does not), `note` says so in a sentence."""

    port = binding.BindableProperty()
    note = binding.BindableProperty()

    def __init__(
        self, api: OllamaApi, host: str, wanted_port: Callable[[], tuple[int, str]],
        extra_hosts: Iterable[str] = (), origins: Iterable[str] = (),
    ) -> None:  # fmt: skip
        self.api = api
        self.host = host
        self.wanted_port = wanted_port  # (port, where it comes from), asked at each (re)start
        self.extra_hosts = list(extra_hosts)
        self.cors = CorsPolicy(origins)  # browser-based Ollama clients on loopback pages (servers/cors.py)
        self.port: int | None = None
        self.note = "The Ollama API starts with mlxui."
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def status(self) -> dict[str, Any]:
        wanted, source = self.wanted_port()
        url = f"http://{_url_host(self.host)}:{self.port}" if self.port else None
        return {
            "port": wanted,
            "source": source,
            "listening": self.port is not None,
            "url": url,
            "note": self.note,
        }

    async def start(self) -> None:
        async with self._lock:
            await self._start()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop()

    async def apply(self) -> None:
        """Listen where the settings now say (after a change of `ollama_port`)."""
        async with self._lock:
            if self.wanted_port()[0] != self.port or self.port is None:
                await self._stop()
                await self._start()

    async def _start(self) -> None:
        port, source = self.wanted_port()
        if port == 0:
            self.note = f"The Ollama API is off (port 0, {source})."
            return
        try:
            sock = _bind(self.host, port)
        except OSError as exc:
            self.note = (
                f"The Ollama API is off: port {port} is taken ({exc.strerror or exc}); is Ollama itself "
                "running? Choose another port in Settings (ollama_port) or set MLXUI_OLLAMA_PORT."
            )
            log.warning("%s", self.note)
            return
        policy = HostPolicy(self.host, self.extra_hosts, port=port)
        config = uvicorn.Config(
            HostOriginGuard(GatewayCors(self.api, self.cors), policy, cross_origin=self.cors.allows),
            log_config=None, lifespan="off", access_log=False,
            timeout_graceful_shutdown=int(STOP_TIMEOUT_S), log_level="warning",
        )  # fmt: skip
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="ollama api")
        self.port = port
        self.note = f"The Ollama API listens at http://{_url_host(self.host)}:{port} ({source})."
        log.info("%s", self.note)

    async def _stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        self.port = None
        if server is None or task is None:
            return
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S + 2)
        if not done:  # a stream that does not end: cut it
            server.force_exit = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif task.exception() is not None:
            log.error("the Ollama API's server ended with an error: %s", task.exception())
        self.note = "The Ollama API is stopped."


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; OSError when the port is taken (or the address is wrong)."""
    family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform.startswith("linux"):  # on macOS it would let us bind beside a wildcard listener
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
