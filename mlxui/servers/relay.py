"""Relay one upstream answer to the gateway's ASGI client, counting tokens on the way.

The stream loop does as little per chunk as possible: forward whole SSE events in the pieces the
socket delivers, count `data: {` events with one C-level scan, and JSON-parse only the event that
carries `usage` (the last one). A task watching the client closes the upstream connection when
the client goes away, which makes mlx_lm.server stop generating (docs/architecture.md §5).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from mlxui.security import SECURITY_HEADERS
from mlxui.servers.call_error import CallError
from mlxui.servers.process import ManagedServer
from mlxui.servers.upstream import UpstreamError, UpstreamExchange

__all__ = [
    "ASGIApp",
    "Receive",
    "Scope",
    "Send",
    "forward_whole",
    "relay_stream",
    "send_error",
    "send_json",
    "send_request",
]

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
HOLD_LIMIT = 1024 * 1024  # an event larger than this is forwarded in pieces rather than held
# The security headers go into each answer's start here, so no wrapper sits in the per-chunk path
# (the gateway's Host/Origin guard is built with add_headers=False).
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    *SECURITY_HEADERS,
]
Renames = tuple[tuple[bytes, bytes], ...]
USAGE_MARKERS = (b'"usage": {', b'"usage":{')  # mlx_lm (json.dumps) and mlx_vlm (pydantic) spacing


async def relay_stream(
    upstream: UpstreamExchange,
    path: str,
    body: bytes,
    receive: Receive,
    send: Send,
    server: ManagedServer,
    *,
    strip_usage: bool,
    renames: Renames = (),
) -> None:
    """Forward an SSE answer chunk by chunk; drop the usage event when the client did not ask for it.
    `renames` (old, new) byte pairs are replaced in whole events (the model's name, say)."""
    async with DisconnectWatch(receive, upstream) as watch:
        if not await send_request(upstream, path, body, send, server, watch):
            return
        if upstream.status != 200 or not upstream.content_type.startswith("text/event-stream"):
            await forward_whole(upstream, send, server, watch)
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        read = upstream.body_reader()
        record = server.record_stream_tokens
        pending = b""  # an incomplete event, held until its end arrives
        last = b""
        counted = 0
        usage_seen = False
        broken: str | None = None
        try:
            while data := await read():
                if pending:
                    data, pending = pending + data, b""
                end = _events_end(data)
                if end == 0:
                    pending = data
                    continue
                if end < len(data):
                    data, pending = data[:end], data[end:]
                tokens = data.count(b"data: {")
                if b'"usage"' in data and any(marker in data for marker in USAGE_MARKERS):
                    data, usage_events = _take_usage(data, server, strip_usage)
                    tokens -= usage_events
                    usage_seen = usage_seen or usage_events > 0
                if tokens > 0:
                    counted += tokens
                    record(tokens)
                if data:
                    for old, new in renames:
                        data = data.replace(old, new)
                    last = data
                    await send({"type": "http.response.body", "body": data, "more_body": True})
        except (UpstreamError, OSError) as exc:  # OSError: a reset seen by the raw socket read
            broken = str(exc) or type(exc).__name__
    if not usage_seen:  # cut short: count the request, and the streamed events as its tokens
        server.record_usage(0, counted)
    if watch.client_gone:
        return  # nobody to tell; closing the upstream connection stopped the generation
    tail = pending
    if b"[DONE]" not in last + pending:
        broken = broken or "the model server ended the stream early (did it crash?)"
        server.record_error(broken)
        tail = _sse_error(broken)  # an unfinished event cannot be parsed: it is dropped
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def send_json(
    send: Send, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await _send_bytes(send, status, json.dumps(payload).encode(), b"application/json", headers)


async def send_error(
    send: Send,
    status: int,
    message: str,
    type_: str,
    code: str,
    *,
    retry_after: int | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """An OpenAI-style error: `{"error": {"message", "type", "code"}}`."""
    extra = list(headers)
    if retry_after is not None:
        extra.append((b"retry-after", str(retry_after).encode()))
    await send_json(send, status, _error_payload(message, type_, code), extra)


async def send_call_error(send: Send, exc: CallError) -> None:
    """A `CallError` (model_calls.py) in OpenAI's error shape."""
    kind = "server_error" if exc.status >= 500 else "invalid_request_error"
    await send_error(send, exc.status, exc.message, kind, exc.code, retry_after=exc.retry_after)


async def send_request(
    upstream: UpstreamExchange,
    path: str,
    body: bytes,
    send: Send,
    server: ManagedServer,
    watch: DisconnectWatch,
) -> bool:
    """Send the request and read the response head; False after answering 502 (or losing the client)."""
    try:
        await upstream.send("POST", path, body)
    except UpstreamError as exc:
        if not watch.client_gone:
            server.record_error(str(exc))
            await send_error(send, 502, str(exc), "upstream_error", "upstream_unavailable")
        return False
    return True


async def forward_whole(
    upstream: UpstreamExchange,
    send: Send,
    server: ManagedServer,
    watch: DisconnectWatch,
    renames: Renames = (),
) -> None:
    try:
        data = await upstream.read_all(MAX_RESPONSE_BYTES)
    except UpstreamError as exc:
        if not watch.client_gone:
            server.record_error(str(exc))
            await send_error(send, 502, str(exc), "upstream_error", "upstream_died")
        return
    if upstream.status >= 400:
        data = _normalized_error(upstream.status, data)
    elif upstream.status == 200:
        _record_body_usage(data, server)
        for old, new in renames:
            data = data.replace(old, new)
    await _send_bytes(send, upstream.status, data, upstream.content_type.encode("latin-1"))


def _events_end(data: bytes) -> int:
    """Where the last complete SSE event in `data` ends (0: none yet, keep reading)."""
    end = data.rfind(b"\n\n")
    if end >= 0:
        return end + 2
    end = data.rfind(b"\n\r\n")  # a server that ends lines with CRLF
    if end >= 0:
        return end + 3
    return len(data) if len(data) >= HOLD_LIMIT else 0


def _take_usage(block: bytes, server: ManagedServer, strip: bool) -> tuple[bytes, int]:
    """Record the usage in `block`'s events; return the block (minus usage-only events if `strip`)
    and how many events carried usage."""
    kept: list[bytes] = []
    found = 0
    for event in block.split(b"\n\n"):
        if not any(marker in event for marker in USAGE_MARKERS):
            kept.append(event)
            continue
        payload = _event_json(event)
        usage = payload.get("usage") if isinstance(payload, dict) else None
        if not isinstance(usage, dict):
            kept.append(event)
            continue
        found += 1
        _record_usage(server, usage)
        if not (strip and not payload.get("choices")):
            kept.append(event)
    return b"\n\n".join(kept), found


def _event_json(event: bytes) -> Any:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                return json.loads(line[5:])
            except (UnicodeDecodeError, json.JSONDecodeError):
                return None
    return None


def _record_body_usage(data: bytes, server: ManagedServer) -> None:
    try:
        usage = json.loads(data).get("usage")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return  # not JSON: nothing to count, the client still gets the answer
    if isinstance(usage, dict):
        _record_usage(server, usage)


def _record_usage(server: ManagedServer, usage: dict[str, Any]) -> None:
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    server.record_usage(
        prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0
    )


def _normalized_error(status: int, data: bytes) -> bytes:
    """mlx_lm.server answers `{"error": "text"}`; OpenAI clients expect `{"error": {"message": ...}}`."""
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and "message" in error:
        return data
    detail = payload.get("detail") if isinstance(payload, dict) else None  # FastAPI's shape (mlx_vlm)
    message = error or detail or data.decode("utf-8", "replace")[:2000] or f"HTTP {status}"
    if not isinstance(message, str):
        message = json.dumps(message)
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    return json.dumps(_error_payload(f"model server: {message}", kind, f"upstream_{status}")).encode()


def _error_payload(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


def _sse_error(message: str) -> bytes:
    # The openai client raises APIError on an event carrying `error`.
    return (
        b"data: " + json.dumps(_error_payload(message, "upstream_error", "upstream_died")).encode() + b"\n\n"
    )


async def _send_bytes(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]
    head += SECURITY_HEADERS
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class DisconnectWatch:
    """While open, a client disconnect closes the upstream connection (and is remembered)."""

    def __init__(self, receive: Receive, upstream: UpstreamExchange) -> None:
        self.receive = receive
        self.upstream = upstream
        self.client_gone = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DisconnectWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                self.upstream.close()
                return
