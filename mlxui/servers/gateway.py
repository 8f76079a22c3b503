"""OpenAI-compatible gateway under `/v1`: one endpoint for every profile, started on demand.

The request's `model` names a profile (or its repo id when unambiguous); the gateway waits until
that server is ready, rewrites `model` for it and relays the answer. It is a pure ASGI app in front
of FastAPI's routing because every layer a streamed chunk passes costs throughput on a small
machine (docs/architecture.md §5); `relay.py` holds the per-chunk loop. A plain request is asked of
the server as a stream and assembled (`assemble.py`), so a client that leaves stops the model;
what the server would silently drop is refused first (`request_checks.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI

from mlxui.access import api_key_ok, bearer_ok
from mlxui.security import HostOriginGuard, HostPolicy
from mlxui.servers import bare_routes, peer_calls, prometheus
from mlxui.servers.assemble import relay_assembled
from mlxui.servers.cors import CorsPolicy, GatewayCors
from mlxui.servers.dialects import anthropic
from mlxui.servers.dialects.responses import ResponsesDialect
from mlxui.servers.keep_alive import KeepAliveError, parse_keep_alive
from mlxui.servers.model_calls import CallError, ModelCalls, ready_server, unknown_model
from mlxui.servers.names import aliases
from mlxui.servers.peers import Peer, PeerBook
from mlxui.servers.process import ManagedServer
from mlxui.servers.relay import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    relay_stream,
    send_call_error,
    send_error,
    send_json,
)
from mlxui.servers.request_body import BodyTooLarge, read_body
from mlxui.servers.state import RUNNING_STATES
from mlxui.servers.supervisor import Supervisor
from mlxui.servers.upstream import UpstreamError, UpstreamExchange

MAX_BODY_BYTES = 50 * 1024 * 1024  # images travel as data URLs inside the JSON
COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
LIST_REFRESH_S = 2.0  # GET /v1/models rescans the local models at most this often
PEER_LIST_REFRESH_S = 30.0  # for another mlxui's refresher (downloads and profile edits rescan anyway)


class Gateway:
    """The `/v1/*` ASGI app. `api_key_provider` is asked on each request, so a key set in Settings
    applies at once."""

    def __init__(
        self,
        supervisor: Supervisor,
        api_key_provider: Callable[[], str | None] = lambda: None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        peers: PeerBook | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.api_key_provider = api_key_provider
        self.max_body_bytes = max_body_bytes
        self.peers = peers  # other mlxui machines whose models are listed and forwarded to
        self.calls = ModelCalls(supervisor, peers)  # the other dialects' road to a model (dialects/)
        self.responses = ResponsesDialect(self.calls)  # OpenAI Responses
        self.anthropic = anthropic.AnthropicMessages(self.calls, max_body_bytes=max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/")
        method: str = scope["method"]
        if path in anthropic.PATHS:  # Anthropic Messages: its own error shape, x-api-key too
            await self.anthropic(scope, receive, send, authorized=self.authorized(scope))
        elif not self.authorized(scope):
            await self.refuse(send)
        elif path in COMPLETION_PATHS:
            if method != "POST":
                await send_error(
                    send, 405, f"{path} takes POST.", "invalid_request_error", "method_not_allowed"
                )
            else:
                await self._completion(scope, receive, send, path)
        elif ResponsesDialect.serves(path):
            await self.responses(scope, receive, send, self._read_body)
        elif path == "/v1/models" and method == "GET":
            forwarded = peer_calls.is_forwarded(scope["headers"])  # another mlxui asks each second
            await self.supervisor.refresh_models(max_age=PEER_LIST_REFRESH_S if forwarded else LIST_REFRESH_S)
            cards = [self._model_card(s) for s in self._servers()]
            await send_json(send, 200, {"object": "list", "data": cards + self._peer_cards(scope)})
        elif path.startswith("/v1/models/") and method == "GET":
            asked = path.removeprefix("/v1/models/")
            server = await self.supervisor.lookup(asked)
            peer_card = next((c for c in self._peer_cards(scope) if c["id"] == asked), None)
            if server is not None:
                await send_json(send, 200, self._model_card(server))
            elif peer_card is not None:
                await send_json(send, 200, peer_card)
            else:
                await send_call_error(send, unknown_model(self.supervisor, asked))
        else:
            await send_error(
                send, 404, f"No such endpoint: {method} {path}", "invalid_request_error", "not_found"
            )

    async def refuse(self, send: Send) -> None:
        await send_error(
            send,
            401,
            "Missing or wrong API key (Authorization: Bearer ...).",
            "authentication_error",
            "invalid_api_key",
            headers=[(b"www-authenticate", b"Bearer")],
        )

    async def _completion(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        raw = await self._read_body(scope, receive, send)
        if raw is None:
            return
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            await send_error(
                send, 400, f"Request body is not valid JSON: {exc}", "invalid_request_error", "invalid_json"
            )
            return
        except RecursionError:  # e.g. [[[[...]]]] a thousand levels deep
            await send_error(
                send, 400, "Request body is JSON nested too deeply.", "invalid_request_error", "invalid_json"
            )
            return
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
            await send_error(
                send,
                400,
                "Request needs a JSON object with a `model` (a model or profile name).",
                "invalid_request_error",
                "model_required",
            )
            return
        asked = body["model"]
        asked_keep_alive = body.get("keep_alive")  # a peer's gateway reads it itself
        try:  # Ollama's field: removed here, mlx_lm does not know it (keep_alive.py)
            keep_alive = _keep_alive(body.pop("keep_alive", None))
        except KeepAliveError as exc:
            await send_error(send, 400, str(exc), "invalid_request_error", "invalid_keep_alive")
            return
        server = self.supervisor.find_by_model(asked)  # a local name wins over a peer's model
        if server is None and (hit := self._peer(scope, asked)) is not None:
            if keep_alive is not None:
                body["keep_alive"] = asked_keep_alive
            await peer_calls.forward(self.peers, *hit, asked, body, path, receive, send)  # type: ignore[arg-type]
            return
        server = server or await self.supervisor.lookup(asked)
        if server is None:
            await send_call_error(send, unknown_model(self.supervisor, asked))
            return
        try:  # what the server would drop or answer badly is refused first (request_checks.py)
            await self.calls.check(server, asked, body)
        except CallError as exc:
            await send_call_error(send, exc)
            return
        with server.in_use():  # busy from here on: never stopped to make room, or as idle, mid-answer
            ready = await self._ready(server, send)
            if ready is None:
                return
            if keep_alive is not None:
                ready.keep_loaded_for(keep_alive)
            await self._forward(ready, asked, body, path, receive, send)

    async def _forward(
        self, server: ManagedServer, asked: str, body: dict[str, Any], path: str, receive: Receive, send: Send
    ) -> None:
        stream = bool(body.get("stream"))
        client_wants_usage = False
        if stream:
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            client_wants_usage = bool(options.get("include_usage"))
            options["include_usage"] = True  # always: usage is how tokens get counted
            body["stream_options"] = options
        body["model"] = server.upstream_model
        renames = _renames(server.upstream_model, asked)  # the reply names what the client asked for
        server.touch()
        try:
            upstream = await UpstreamExchange.open(server.base_url or "")
        except UpstreamError as exc:
            server.record_error(str(exc))
            await send_error(send, 502, str(exc), "upstream_error", "upstream_unavailable")
            return
        try:
            if stream:
                await relay_stream(
                    upstream, path, json.dumps(body).encode(), receive, send, server,
                    strip_usage=not client_wants_usage, renames=renames,
                )  # fmt: skip
            else:  # streamed from the server, so a client that leaves stops it (assemble.py)
                await relay_assembled(upstream, path, body, receive, send, server, asked)
        finally:
            upstream.close()
            server.touch()

    async def _ready(self, server: ManagedServer, send: Send) -> ManagedServer | None:
        """The server once ready (started on demand), or None after telling the client why not."""
        try:
            return await ready_server(self.supervisor, server)
        except CallError as exc:
            await send_call_error(send, exc)
            return None

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        try:
            return await read_body(scope, receive, self.max_body_bytes)
        except BodyTooLarge as exc:
            await send_error(send, 413, str(exc), "invalid_request_error", "request_too_large")
            return None

    def authorized(self, scope: Scope) -> bool:
        """No key set, or exactly one `Authorization: Bearer <key>` header (mlxui.access); the
        Anthropic paths take Anthropic's `x-api-key` header too."""
        key = self.api_key_provider()
        if not key or bearer_ok(scope["headers"], key):
            return True
        return scope["path"].rstrip("/") in anthropic.PATHS and api_key_ok(scope["headers"], key)

    def _peer(self, scope: Scope, asked: str) -> tuple[Peer, str] | None:
        """(peer, its own id) for a peer's model; never for a request another mlxui forwarded."""
        if self.peers is None or peer_calls.is_forwarded(scope["headers"]):
            return None
        return self.peers.find(asked)

    def _peer_cards(self, scope: Scope) -> list[dict[str, Any]]:
        if self.peers is None or peer_calls.is_forwarded(scope["headers"]):
            return []  # the loop guard: a peer asking for our models gets only our own
        return self.peers.model_cards(set(self.supervisor.servers))

    def _servers(self) -> list[ManagedServer]:
        return sorted(self.supervisor.servers.values(), key=lambda s: s.name)

    def _model_card(self, server: ManagedServer) -> dict[str, Any]:
        """OpenAI's model object, plus what a client may want before it asks: is it loaded, what can
        it do, how much memory it plans to take, and the other names it answers to."""
        entry = self.supervisor.local_entry(server)
        caps = entry.capabilities if entry is not None else None
        return {
            "id": server.name,
            "object": "model",
            "created": int(entry.last_modified) if entry is not None else 0,
            "owned_by": "mlxui",
            "state": str(server.state),
            "source": "local" if server.profile.implicit else "profile",
            "model": server.profile.model,
            "aliases": aliases(server, self.supervisor.servers),
            "kind": server.kind,
            "upstream_model": server.upstream_model,
            "capabilities": {
                "vision": bool(caps and caps.vision),
                "tools": bool(caps and caps.tools),
                "thinking": bool(caps and caps.thinking),
                "context_length": caps.context_length if caps else None,
                "parameters": caps.parameters if caps else None,
                "quant_bits": caps.quant_bits if caps else None,
            },
            "memory": {
                "planned_bytes": self.supervisor.plans.plan(server),  # measured once it ran (plans.py)
                "estimate_bytes": entry.estimate.total_bytes if entry is not None else None,
                "fit": entry.fit if entry is not None else None,
                "rss_bytes": server.metrics.rss_bytes if server.state in RUNNING_STATES else None,
            },
        }


def _keep_alive(value: object) -> float | None:
    """A request's `keep_alive` in seconds (None: not given, JSON null included)."""
    return None if value is None else parse_keep_alive(value)


def _renames(upstream_model: str, asked: str) -> tuple[tuple[bytes, bytes], ...]:
    """How the server's replies name the model (its --model path) -> the name the client used, in
    both JSON spacings (mlx_lm writes `"model": `, mlx_vlm `"model":`)."""
    if upstream_model == asked:
        return ()
    old, new = json.dumps(upstream_model).encode(), json.dumps(asked).encode()
    return ((b'"model": ' + old, b'"model": ' + new), (b'"model":' + old, b'"model":' + new))


class GatewayMiddleware:
    """Sends `/v1/*` (and the same routes without `/v1`, as `mlx_lm.server` takes them) to the
    gateway and `GET /metrics` to the Prometheus exporter, everything else on to the app.
    Host/Origin checks still apply: the guard wraps the gateway here, and lets the origins of
    `servers/cors.py` through to it (CORS)."""

    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        guard_policy: HostPolicy | None = None,
        origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        cors = CorsPolicy(origins)
        shared: ASGIApp = GatewayCors(gateway, cors)
        self.gateway: ASGIApp = (
            shared
            if guard_policy is None
            else HostOriginGuard(shared, guard_policy, add_headers=False, cross_origin=cors.allows)
        )
        metrics = _KeyRequired(prometheus.MetricsEndpoint(gateway.supervisor), gateway)
        self.metrics: ASGIApp = metrics if guard_policy is None else HostOriginGuard(metrics, guard_policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/v1/") or path == "/v1":
                await self.gateway(scope, receive, send)
                return
            if bare_routes.serves(scope):
                await self.gateway(bare_routes.under_v1(scope), receive, send)
                return
            if path == "/metrics":
                await self.metrics(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _KeyRequired:
    """`/metrics` answers only with the gateway key, when one is set: it names every model."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app, self.gateway = app, gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.gateway.authorized(scope):
            await self.app(scope, receive, send)
        else:
            await self.gateway.refuse(send)


def register_gateway(
    app: FastAPI,
    supervisor: Supervisor,
    *,
    api_key_provider: Callable[[], str | None],
    origins: Iterable[str] = (),
    peers: PeerBook | None = None,
) -> Gateway:
    """Serve `/v1/*` and `GET /metrics` from `supervisor`'s profiles on `app` (call before it starts);
    web pages from loopback origins and `origins` may call the gateway from a browser (CORS).

    The gateway is moved to the front of the middleware stack when the app builds it, so streamed
    chunks skip the per-response middlewares `ui.run` adds later (GZip and two BaseHTTPMiddlewares).
    Host/Origin checks still apply: the HostOriginGuard registered on `app` (before or after this
    call) is found then and wrapped around the gateway's routes.
    """
    gateway = Gateway(supervisor, api_key_provider, peers=peers)
    app.add_middleware(GatewayMiddleware, gateway=gateway, origins=tuple(origins))
    _keep_gateway_first(app)
    return gateway


def _keep_gateway_first(app: FastAPI) -> None:
    build = app.build_middleware_stack
    if getattr(build, "keeps_gateway_first", False):  # NiceGUI's test reset keeps the app object
        return

    def build_with_gateway_first() -> ASGIApp:
        entries = app.user_middleware
        gateways = [m for m in entries if m.cls is GatewayMiddleware]
        others = [m for m in entries if m.cls is not GatewayMiddleware]
        policy = next((m.kwargs.get("policy") for m in others if m.cls is HostOriginGuard), None)
        for entry in gateways:
            entry.kwargs["guard_policy"] = policy
        entries[:] = gateways + others
        return build()

    build_with_gateway_first.keeps_gateway_first = True  # type: ignore[attr-defined]
    app.build_middleware_stack = build_with_gateway_first  # type: ignore[method-assign]
