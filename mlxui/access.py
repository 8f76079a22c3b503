"""The gateway key: who may use mlxui, beyond the Host/Origin checks of `mlxui.security`.

What the key guards (docs/security.md says the same):
- always: the OpenAI gateway (`/v1/*`, checked by the gateway itself) and `/metrics`;
- when mlxui is bound beyond this machine (`--host`): also every page, the websocket and `/api/*`,
  for every client that is not on this machine. A browser signs in once at `/login`, which sets an
  HttpOnly, SameSite=Strict cookie derived from the key (never the key itself). Clients on this
  machine (the CLI, the tray, a browser on 127.0.0.1) need no key for `/api` and the pages: a local
  process can read mlxui's files anyway, and the Host/Origin checks keep web pages out.

A request is authorised by exactly one `Authorization: Bearer <key>` header (the scheme in any
case); two Authorization headers are refused rather than guessed between.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from mlxui.security import SECURITY_HEADERS

COOKIE = "mlxui_session"
LOGIN_PATH = "/login"
OPEN_PREFIXES = ("/v1/", "/healthz", "/assets/", "/favicon")  # /v1: the gateway checks
KeyProvider = Callable[[], str | None]


def bearer_ok(headers: list[tuple[bytes, bytes]], key: str) -> bool:
    """Exactly one Authorization header, `Bearer <key>` (any case of "Bearer")."""
    values = [value for name, value in headers if name.lower() == b"authorization"]
    if len(values) != 1:
        return False
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def api_key_ok(headers: list[tuple[bytes, bytes]], key: str) -> bool:
    """Exactly one `x-api-key: <key>` header (Anthropic's clients send the key that way)."""
    values = [value for name, value in headers if name.lower() == b"x-api-key"]
    return len(values) == 1 and hmac.compare_digest(
        values[0].decode("latin-1").strip().encode(), key.encode()
    )


def session_token(key: str) -> str:
    """What the login cookie holds: derived from the key, so a new key signs every browser out."""
    return hmac.new(key.encode(), b"mlxui browser session", hashlib.sha256).hexdigest()


class KeyGate:
    """ASGI middleware: the key on everything but `/v1` and `/metrics` (the gateway checks those
    itself) for remote clients when mlxui is bound beyond loopback (see the module's docstring)."""

    def __init__(self, app: ASGIApp, key_provider: KeyProvider, *, beyond_loopback: bool) -> None:
        self.app, self.key_provider, self.beyond_loopback = app, key_provider, beyond_loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self.key_provider()
        if scope["type"] not in ("http", "websocket") or not key:
            await self.app(scope, receive, send)
        elif scope["path"] == LOGIN_PATH and self.beyond_loopback:
            await self._login(scope, receive, send, key)
        elif self._allowed(scope, key):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "Sign in first."})
        elif scope["path"].startswith("/api/") or scope.get("method") != "GET":
            await _json(send, 401, "This needs the mlxui key: send Authorization: Bearer <key>.")
        else:
            target = quote(scope["path"], safe="/")
            await _send(send, 303, b"", [(b"location", f"{LOGIN_PATH}?next={target}".encode())])

    def _allowed(self, scope: Scope, key: str) -> bool:
        path: str = scope["path"]
        if not self.beyond_loopback or path.startswith(OPEN_PREFIXES) or _from_this_machine(scope):
            return True
        return bearer_ok(scope["headers"], key) or _cookie(scope) == session_token(key)

    async def _login(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        target = parse_qs(scope.get("query_string", b"").decode()).get("next", ["/"])[0]
        if not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
            target = "/"
        wrong = False
        if scope.get("method") == "POST":
            body = await _read_form(receive)
            if hmac.compare_digest(body.get("key", "").encode(), key.encode()):
                cookie = f"{COOKIE}={session_token(key)}; Path=/; HttpOnly; SameSite=Strict"
                await _send(
                    send, 303, b"", [(b"location", target.encode()), (b"set-cookie", cookie.encode())]
                )
                return
            wrong = True
        await _send(
            send, 401 if wrong else 200, _login_page(target, wrong), [(b"content-type", b"text/html")]
        )


def _from_this_machine(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE:
                    return val
    return None


async def _read_form(receive: Receive) -> dict[str, str]:
    data, more = b"", True
    while more and len(data) < 8192:
        message = await receive()
        data += message.get("body", b"")
        more = message.get("more_body", False)
    return {k: v[0] for k, v in parse_qs(data.decode("utf-8", "replace")).items()}


def _login_page(target: str, wrong: bool) -> bytes:
    note = '<p class="err">That is not the key.</p>' if wrong else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>mlxui · sign in</title>
<style>body{{background:#0f172a;color:#e2e8f0;font-family:system-ui;display:grid;place-items:center;height:90vh}}
form{{background:#1e293b;padding:2rem;border-radius:12px;display:grid;gap:.8rem;min-width:320px}}
input,button{{font-size:1rem;padding:.5rem;border-radius:6px;border:1px solid #475569}}
button{{background:#7c5cff;color:white;border:0}}.err{{color:#f87171;margin:0}}</style></head>
<body><form method="post" action="{LOGIN_PATH}?next={html.escape(quote(target, safe="/"))}">
<h2 style="margin:0">mlxui</h2><label for="key">This mlxui is shared on the network: enter its key
(Settings → Gateway API key on the machine that runs it).</label>{note}
<input id="key" name="key" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button></form></body></html>""".encode()


async def _json(send: Send, status: int, message: str) -> None:
    body = json.dumps(
        {"error": {"message": message, "type": "authentication_error", "code": status}}
    ).encode()
    await _send(
        send, status, body, [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    )


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
