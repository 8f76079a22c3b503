"""The Ollama API (the one apps on port 11434 speak), served by mlxui on its own listener.

`OllamaApi` is a pure ASGI app: `/api/*` in Ollama's shapes (models, chat, generate, pull,
delete), `/v1/*` handed to the OpenAI gateway, `GET /` answers "Ollama is running" as apps probe
it. Everything it does not serve answers JSON (`{"error": ...}`): 501 for Ollama endpoints mlxui
does not offer (embeddings, create, push, copy, blobs), 404 for the rest. With a gateway key set,
every request needs it (`Authorization: Bearer <key>`), as `/v1` does. The Host/Origin guard
wraps it where the listener is built (`ollama_listener.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.types import Receive, Scope, Send

from mlxui import __version__
from mlxui.hub.downloads import DownloadManager
from mlxui.servers.dialects import ollama_chat, ollama_models, ollama_pull
from mlxui.servers.dialects.ollama_wire import OllamaError, model_field, read_json, send_error, send_json
from mlxui.servers.gateway import Gateway
from mlxui.servers.model_calls import CallError

log = logging.getLogger(__name__)
OLLAMA_VERSION = "0.12.0"  # the Ollama API level these endpoints follow (clients check it)
NOT_SERVED = {
    "/api/embed": "embeddings", "/api/embeddings": "embeddings", "/api/create": "creating models",
    "/api/push": "pushing models", "/api/copy": "copying models", "/api/blobs": "uploading blobs",
}  # fmt: skip
ROUTES = {
    "/api/version": "GET", "/api/tags": "GET", "/api/ps": "GET", "/api/show": "POST", "/api/chat": "POST",
    "/api/generate": "POST", "/api/pull": "POST", "/api/delete": "DELETE",
}  # fmt: skip


class OllamaApi:
    def __init__(self, gateway: Gateway, downloads: DownloadManager, cache_dir: Path) -> None:
        self.gateway = gateway
        self.supervisor = gateway.supervisor
        self.calls = gateway.calls
        self.downloads = downloads
        self.cache_dir = cache_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no websockets here; lifespan is off in the listener
            return
        path: str = scope["path"].rstrip("/") or "/"
        if path == "/v1" or path.startswith("/v1/"):
            await self.gateway(scope, receive, send)
            return
        if not self.gateway.authorized(scope):
            await send_json(send, 401, {"error": "missing or wrong API key (Authorization: Bearer ...)"},
                            [(b"www-authenticate", b"Bearer")])  # fmt: skip
            return
        try:
            await self._route(path, scope["method"], scope, receive, send)
        except OllamaError as exc:
            await send_error(send, exc.status, exc.message)
        except CallError as exc:
            headers = [(b"retry-after", str(exc.retry_after).encode())] if exc.retry_after else []
            await send_json(send, exc.status, {"error": exc.message}, headers)

    async def _route(self, path: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        if path == "/" and method in ("GET", "HEAD"):
            body = b"Ollama is running"  # the probe apps use; it is mlxui (see /api/version)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
            return
        unserved = next((what for prefix, what in NOT_SERVED.items() if path.startswith(prefix)), None)
        if unserved:
            raise OllamaError(501, f"mlxui does not serve {path} ({unserved}) on its Ollama API; "
                                   "it serves chat, generate, tags, show, ps, pull and delete")  # fmt: skip
        wanted = ROUTES.get(path)
        if wanted is None:
            raise OllamaError(404, f"no such endpoint: {method} {path}")
        allowed = {wanted, "HEAD"} if wanted == "GET" else {wanted, "POST"}  # some clients POST deletes
        if method not in allowed:
            raise OllamaError(405, f"{path} takes {wanted}")
        await getattr(self, "_" + path.removeprefix("/api/"))(scope, receive, send)

    async def _version(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"version": OLLAMA_VERSION, "mlxui": __version__})

    async def _tags(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.supervisor.refresh_models(max_age=2.0)
        await send_json(send, 200, ollama_models.tags(self.supervisor, self.calls.peers))

    async def _ps(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, ollama_models.running(self.supervisor))

    async def _show(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = model_field(await read_json(scope, receive))
        server = await ollama_models.find(self.supervisor, name)
        await send_json(send, 200, await ollama_models.show(server, self.supervisor))

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_json(scope, receive)
        await ollama_chat.answer(self.calls, raw, "chat", model_field(raw), receive, send)

    async def _generate(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_json(scope, receive)
        await ollama_chat.answer(self.calls, raw, "generate", model_field(raw), receive, send)

    async def _pull(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_json(scope, receive)
        await ollama_pull.pull(self.downloads, raw, model_field(raw), receive, send)

    async def _delete(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = model_field(await read_json(scope, receive))
        await ollama_pull.delete(self.supervisor, self.downloads, self.cache_dir, name)
        log.info("deleted %s through the Ollama API", name)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
