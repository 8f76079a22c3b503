"""CORS for the gateway: which web pages may call `/v1/*` from a browser, and the answers that say so.

A browser-based client (a chat UI on a dev server, a notebook in the browser) calls the gateway
from another origin. The browser first asks with a preflight (`OPTIONS` with `Origin` and
`Access-Control-Request-Method`), then sends the request and hands the answer to the page only if
it carries `Access-Control-Allow-Origin`. Allowed: pages from this machine (`http://localhost:*`,
`http://127.0.0.1:*`, `http://[::1]:*`, any port) and the exact origins in `MLXUI_ORIGINS`. Every
other origin is refused by the Host/Origin guard before it gets here (docs/security.md). No
credentials (cookies) are allowed: a client sends the gateway key itself, in a header.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlxui.security import SECURITY_HEADERS, parse_host

LOOPBACK_ORIGIN_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_METHODS = b"GET, POST, DELETE, OPTIONS"
# The headers the OpenAI, Anthropic and Ollama clients send; the official JS SDKs add their
# `x-stainless-*` telemetry headers (and Anthropic's `anthropic-dangerous-direct-browser-access`).
ALLOWED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "x-api-key",
        "anthropic-version",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
        "openai-organization",
        "openai-project",
    }
)
ALLOWED_HEADER_PREFIXES = ("x-stainless-",)
MAX_AGE_S = b"600"


class CorsPolicy:
    """Which origins may read the gateway's answers: loopback at any port, plus `extra` exactly."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = frozenset(origin.lower().rstrip("/") for origin in extra)

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        if origin.lower() in self.extra:
            return True
        parts = urlsplit(origin)
        if parts.scheme != "http" or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
            return False
        host = parse_host(parts.netloc)
        return host is not None and host[0] in LOOPBACK_ORIGIN_NAMES


def allowed_request_headers(requested: str) -> bytes:
    """The names of `Access-Control-Request-Headers` the gateway takes, comma-separated; a header
    left out makes the browser refuse the request, which is the point."""
    names = [name.strip().lower() for name in requested.split(",") if name.strip()]
    kept = [n for n in names if n in ALLOWED_HEADERS or n.startswith(ALLOWED_HEADER_PREFIXES)]
    return ", ".join(kept or sorted(ALLOWED_HEADERS)).encode("latin-1")


class GatewayCors:
    """ASGI wrapper: answers preflights from allowed origins and marks their answers readable.
    Requests without an Origin, or from an origin not allowed, pass through unchanged."""

    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if not self.policy.allows(origin):
            await self.app(scope, receive, send)
            return
        allow = [(b"access-control-allow-origin", (origin or "").encode("latin-1")), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            requested = headers.get("access-control-request-headers", "")
            preflight = [
                *allow,
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", allowed_request_headers(requested)),
                (b"access-control-max-age", MAX_AGE_S),
                (b"content-length", b"0"),
                *SECURITY_HEADERS,
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return

        async def readable(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *allow]}
            await send(message)

        await self.app(scope, receive, readable)
