"""The Ollama API's wire: JSON bodies in, JSON or NDJSON out, errors as `{"error": "..."}`, and a
client that leaves cancelling the work (which closes the model server's stream: docs §5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.types import Receive, Scope, Send

MAX_BODY_BYTES = 50 * 1024 * 1024  # images travel base64 inside the JSON
JSON_TYPE = (b"content-type", b"application/json; charset=utf-8")
NDJSON_HEADERS = [(b"content-type", b"application/x-ndjson"), (b"cache-control", b"no-cache"),
                  (b"x-accel-buffering", b"no")]  # fmt: skip


class OllamaError(Exception):
    """A refusal in the Ollama API's shape: an HTTP status and the sentence under `error`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    """RFC 3339 in UTC, as Ollama writes `created_at`."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def iso_of(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).isoformat().replace("+00:00", "Z")


def ns_since(start: float, end: float | None = None) -> int:
    """Nanoseconds between two `time.monotonic()` readings (Ollama's durations)."""
    return max(0, int(((time.monotonic() if end is None else end) - start) * 1e9))


async def send_json(
    send: Send, status: int, payload: Any, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(payload).encode()
    start = [JSON_TYPE, (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, status: int, message: str) -> None:
    await send_json(send, status, {"error": message})


class Ndjson:
    """One NDJSON answer: `start()` once, then `line(obj)` per object; `end()` closes it."""

    def __init__(self, send: Send, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.send = send
        self.headers = headers
        self.started = False

    async def line(self, obj: dict[str, Any]) -> None:
        if not self.started:
            await self.send({"type": "http.response.start", "status": 200,
                             "headers": [*NDJSON_HEADERS, *self.headers]})  # fmt: skip
            self.started = True
        await self.send(
            {"type": "http.response.body", "body": json.dumps(obj).encode() + b"\n", "more_body": True}
        )

    async def end(self) -> None:
        await self.send({"type": "http.response.body", "body": b""})


async def read_json(scope: Scope, receive: Receive, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object (an empty body is `{}` unless `required`); OllamaError otherwise."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            raise OllamaError(413, f"request body is larger than {MAX_BODY_BYTES // 2**20} MB")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("the client left before sending its request")
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if size > MAX_BODY_BYTES:
            raise OllamaError(413, f"request body is larger than {MAX_BODY_BYTES // 2**20} MB")
        if not message.get("more_body", False):
            break
    raw = b"".join(parts)
    if not raw.strip():
        if required:
            raise OllamaError(400, "missing request body: send a JSON object")
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise OllamaError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise OllamaError(400, "request body must be a JSON object")
    return body


def model_field(body: dict[str, Any]) -> str:
    """`model` (or the older `name`) of a request; OllamaError when missing."""
    model = body.get("model") or body.get("name")
    if not isinstance(model, str) or not model.strip():
        raise OllamaError(400, "model is required")
    return model.strip()


async def until_disconnect(receive: Receive, work: Awaitable[None]) -> None:
    """Run `work`; when the client goes away first, cancel it (so the model stops generating)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    with contextlib.suppress(asyncio.CancelledError):
        await task  # raises what the work raised; a cancelled one (the client left) ends quietly
