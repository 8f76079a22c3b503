"""Host and Origin checks for every HTTP and websocket request (app, API and gateway).

A page on evil.example can make the browser send requests to 127.0.0.1 (CSRF), and with DNS
rebinding it can even read the answers. Both are stopped here: the `Host` header must name this
machine the way a user would type it, and a request that can change something must not come from
a foreign `Origin`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HostPolicy:
    """Decides which Host and Origin values name this app."""

    def __init__(self, bind_host: str, extra_hosts: Iterable[str] = ()) -> None:
        self.bind_host = bind_host.strip("[]").lower()
        self.names = {name.lower().strip("[]") for name in (*LOOPBACK_NAMES, self.bind_host, *extra_hosts)}
        # Bound beyond loopback on purpose (--host): LAN clients use an IP address. A DNS-rebinding
        # attack needs a host *name*, so IP literals stay safe to accept there.
        self.accept_ip_literals = self.bind_host not in LOOPBACK_NAMES

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name = _strip_port(host_header.strip().lower())
        if name in self.names:
            return True
        return self.accept_ip_literals and _is_ip(name)

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not sent by browsers for same-origin GETs, nor by CLI clients
        if origin == "null":
            return False
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        return self.host_allowed(parts.netloc)


class HostOriginGuard:
    """Pure ASGI middleware so websockets (NiceGUI's socket.io) are covered as well as HTTP."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._problem(scope, headers)
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": problem})
        else:
            await _forbidden(send, problem)

    def _problem(self, scope: Scope, headers: dict[str, str]) -> str | None:
        if not self.policy.host_allowed(headers.get("host")):
            return "Host not allowed: mlxui only answers requests addressed to this machine."
        origin = headers.get("origin")
        changes_state = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if changes_state and not self.policy.origin_allowed(origin):
            return "Origin not allowed: cross-site requests to mlxui are refused."
        return None


async def _forbidden(send: Send, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "forbidden", "code": 403}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8765
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
