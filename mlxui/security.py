"""Host, Origin and framing checks for every HTTP and websocket request (app, API and gateway).

What a hostile web page can try, and what stops it here (docs/security.md lists the tests):

- DNS rebinding (a page on evil.example whose name resolves to 127.0.0.1 reads our answers): the
  `Host` header must name this machine as a user would type it, in a strict `name[:port]` form.
- Cross-site requests (a page, also one served by another local program on another port, makes the
  browser send requests to mlxui): a request that carries an `Origin` must come from mlxui's own
  origin (scheme, host and port; the gateway also takes the CORS origins of `servers/cors.py`),
  a state-changing one must not say `Sec-Fetch-Site: cross-site`
  or `same-site`, and a body sent to `/api` or `/v1` must be declared as JSON (or YAML for an
  import): the form-like types a page may send without a CORS preflight are refused.
- Framing (clickjacking): every answer says `X-Frame-Options: DENY` and
  `Content-Security-Policy: frame-ancestors 'none'`, with a CSP that lets the UI run but loads
  images, scripts and connections from mlxui alone.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_PREFIXES = ("/api/", "/v1/")
# What a page may send cross-site without a preflight (the CORS "simple" content types).
SIMPLE_CONTENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
# NiceGUI renders with Vue's runtime template compiler ('unsafe-eval') and inline start-up scripts.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
MAX_UPLOAD_BYTES = 11 * 1024 * 1024  # one image (10 MB, chat/images.py) plus the form's envelope
BODY_LIMITS = {"/api/": 1024 * 1024, "/_nicegui/client/": MAX_UPLOAD_BYTES}
_HOST = re.compile(
    r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::(?P<port>[0-9]{1,5}))?"
)


class HostPolicy:
    """Decides which Host and Origin values name this app (bound to `bind_host`:`port`)."""

    def __init__(self, bind_host: str, extra_hosts: Iterable[str] = (), *, port: int | None = None) -> None:
        self.bind_host = bind_host.strip("[]").lower()
        self.port = port
        self.names = {name.lower().strip("[]") for name in (*LOOPBACK_NAMES, self.bind_host, *extra_hosts)}
        # Bound beyond loopback on purpose (--host): LAN clients use an IP address. A DNS-rebinding
        # attack needs a host *name*, so IP literals stay safe to accept in the Host header there.
        self.accept_ip_literals = self.bind_host not in LOOPBACK_NAMES

    def host_allowed(self, host_header: str | None) -> bool:
        parsed = parse_host(host_header)
        if parsed is None:
            return False
        name = parsed[0]
        return name in self.names or (self.accept_ip_literals and _is_ip(name))

    def origin_allowed(self, origin: str | None, host_header: str | None = None) -> bool:
        """No Origin (CLI clients, same-origin GETs), the request's own origin, or mlxui's own
        loopback address with its port. An IP address alone is never enough."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.username:
            return False
        own = parse_host(parts.netloc)
        if own is None:
            return False
        name, port = own[0], own[1] or (443 if parts.scheme == "https" else 80)
        host = parse_host(host_header)
        if host is not None and self.host_allowed(host_header) and (host[0], host[1] or 80) == (name, port):
            return True  # same origin as the address the request went to
        return name in LOOPBACK_NAMES and self.port is not None and port == self.port


class HostOriginGuard:
    """Pure ASGI middleware so websockets (NiceGUI's socket.io) are covered as well as HTTP."""

    def __init__(
        self,
        app: ASGIApp,
        policy: HostPolicy,
        *,
        add_headers: bool = True,
        cross_origin: Callable[[str | None], bool] | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.add_headers = add_headers  # False: the app puts SECURITY_HEADERS in its answers itself
        # Origins the wrapped app serves to other sites on purpose (the gateway's CORS, servers/cors.py):
        # they pass the Origin and Sec-Fetch-Site checks; the Host and JSON-body checks still apply.
        self.cross_origin = cross_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        status, problem = self._problem(scope, headers)
        if problem is None:
            wrap = self.add_headers and scope["type"] == "http"
            await self.app(scope, receive, _with_security_headers(send) if wrap else send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": problem})
        else:
            await _refuse(send, status, problem)

    def _problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str | None]:
        if not self.policy.host_allowed(headers.get("host")):
            return 403, "Host not allowed: mlxui only answers requests addressed to this machine."
        shared = (
            scope["type"] == "http"
            and self.cross_origin is not None
            and self.cross_origin(headers.get("origin"))
        )
        if not shared and not self.policy.origin_allowed(headers.get("origin"), headers.get("host")):
            return 403, "Origin not allowed: cross-site requests to mlxui are refused."
        changes_state = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        cross_site = headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")
        if changes_state and cross_site and not shared:
            return 403, "Origin not allowed: cross-site requests to mlxui are refused."
        if changes_state and scope["type"] == "http" and scope["path"].startswith(BODY_PREFIXES):
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if has_body and (not kind or kind in SIMPLE_CONTENT_TYPES):
                return 415, "Send the body as JSON, with the header Content-Type: application/json."
        return 200, None


class BodyLimit:
    """Refuse request bodies over a size limit with a 413 before they fill memory.

    `limits` maps path prefixes to bytes: the JSON API takes 1 MB, an upload (an image, a profile
    export) 11 MB; the gateway checks its own (larger: images travel inside its JSON). Pure ASGI:
    a declared Content-Length is refused at once; a chunked body is cut off where it passes the
    limit and the app's answer to the stump is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.limits = limits if limits is not None else BODY_LIMITS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = next(
            (n for prefix, n in self.limits.items() if scope.get("path", "").startswith(prefix)), None
        )
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen, over = 0, False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # end the body here; the app's answer to it is replaced below
                over = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def unless_over(message: Message) -> None:
            if not over:
                await send(message)

        await self.app(scope, counted, unless_over)
        if over:
            await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    message = f"The request body is larger than {limit // 1024} KB."
    body = json.dumps({"error": {"message": message, "type": "too_large", "code": 413}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def parse_host(value: str | None) -> tuple[str, int | None] | None:
    """`name[:port]` of a Host header or an origin's netloc, lowercased; None if it is not one."""
    if not value:
        return None
    match = _HOST.fullmatch(value.strip().lower())
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        return None
    return match["name"].strip("[]"), port


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _refuse(send: Send, status: int, message: str) -> None:
    kind = "forbidden" if status == 403 else "unsupported_media_type"
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
