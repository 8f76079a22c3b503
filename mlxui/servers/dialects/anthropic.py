"""Anthropic Messages on the gateway: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

A request is checked and translated to OpenAI chat (`anthropic_request`), sent to the model
through `ModelCalls` (names, on-demand start, busy mark, usage), always as a stream, and its
chunks are translated back (`anthropic_events`): as Anthropic's SSE events for a streaming
client, folded into one message for the others. A client that goes away cancels the work, which
leaves the call and closes the upstream connection, so the model stops generating at once, for
plain requests too. Errors use Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from mlxui.servers.dialects.anthropic_events import AnswerEvents, Event, assemble, message_id, message_start
from mlxui.servers.dialects.anthropic_request import MessagesRequest, RequestError, parse_messages_request
from mlxui.servers.dialects.token_count import TokenCountError, TokenizerUnavailable
from mlxui.servers.model_calls import CallError, ModelCalls
from mlxui.servers.relay import SSE_HEADERS, Receive, Scope, Send, send_json
from mlxui.servers.request_body import BodyTooLarge, read_body

MESSAGES_PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
PATHS = frozenset({MESSAGES_PATH, COUNT_PATH})
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class AnthropicMessages:
    """The ASGI handler the gateway hands these two paths to, with its verdict on the key."""

    def __init__(self, calls: ModelCalls, *, max_body_bytes: int) -> None:
        self.calls = calls
        self.max_body_bytes = max_body_bytes
        self.counter = calls.counter  # one tokenizer cache with the request checks

    async def __call__(self, scope: Scope, receive: Receive, send: Send, *, authorized: bool) -> None:
        path: str = scope["path"].rstrip("/")
        if not authorized:
            await send_error(send, CallError(401, "invalid_api_key", "Missing or wrong API key: send the "
                                             "gateway key as x-api-key or Authorization: Bearer."))  # fmt: skip
            return
        if scope["method"] != "POST":
            await send_error(send, CallError(405, "method_not_allowed", f"{path} takes POST."))
            return
        try:
            raw = await read_body(scope, receive, self.max_body_bytes)
            if raw is None:
                return  # the client went away before it finished sending
            request = parse_messages_request(_json(raw), counting=path == COUNT_PATH)
            if path == COUNT_PATH:
                await self._count(request, send)
            else:
                await until_client_leaves(receive, self._answer(request, send))
        except BodyTooLarge as exc:
            await send_error(send, CallError(413, "request_too_large", str(exc)))
        except RequestError as exc:
            await send_error(send, CallError(400, "invalid_request", str(exc)))
        except CallError as exc:
            await send_error(send, exc)

    async def _answer(self, request: MessagesRequest, send: Send) -> None:
        msg_id = message_id()
        translation = AnswerEvents(request.stop_sequences)
        started = False  # once the stream's head is sent, errors go into the stream
        try:
            async with self.calls.chat(request.model, {**request.openai, "stream": True}) as answer:
                events = translation.events(answer.chunks())
                if not request.stream:
                    whole = assemble(msg_id, request.model, [event async for event in events])
                    await send_json(send, 200, whole)
                    return
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                started = True
                await _send_event(send, message_start(msg_id, request.model))
                await _send_event(send, {"type": "ping"})
                async for event in events:
                    await _send_event(send, event)
                await _send_event(send, {"type": "message_stop"}, more=False)
        except CallError as exc:
            if not started:
                raise
            error = {"type": "error", "error": {"type": error_type(exc), "message": exc.message}}
            await _send_event(send, error, more=False)

    async def _count(self, request: MessagesRequest, send: Send) -> None:
        server = await self.calls.server(request.model)
        entry = self.calls.supervisor.local_entry(server)
        folder = entry.path if entry is not None else Path(server.profile.model)
        if not folder.is_dir():
            raise CallError(
                404, "model_files_missing", f"The files of {request.model!r} are not on this machine."
            )
        try:
            count = await self.counter.count(folder, request.openai["messages"], request.openai.get("tools"))
        except TokenizerUnavailable as exc:
            raise CallError(500, "tokenizer_unavailable", str(exc)) from exc
        except TokenCountError as exc:
            raise CallError(400, "cannot_count", str(exc)) from exc
        await send_json(send, 200, {"input_tokens": count})


async def until_client_leaves(receive: Receive, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` (the answer) until it ends or the client disconnects, whichever comes first;
    on a disconnect it is cancelled, which closes its upstream connection. Its errors propagate."""
    job = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (job, gone):
            task.cancel()
        await asyncio.wait({job, gone})
    if not job.cancelled():
        job.result()  # re-raises the answer's error, if any


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_event(send: Send, event: Event, *, more: bool = True) -> None:
    data = f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
    await send({"type": "http.response.body", "body": data, "more_body": more})


def error_type(exc: CallError) -> str:
    if exc.status in ERROR_TYPES:
        return ERROR_TYPES[exc.status]
    if exc.status in (503, 529) and exc.retry_after is not None:
        return "overloaded_error"  # loading, or waiting for memory: try again shortly
    return "api_error" if exc.status >= 500 else "invalid_request_error"


async def send_error(send: Send, exc: CallError) -> None:
    """A `CallError` in Anthropic's error shape (with Retry-After when it has one)."""
    headers = [(b"retry-after", str(exc.retry_after).encode())] if exc.retry_after is not None else []
    payload = {"type": "error", "error": {"type": error_type(exc), "message": exc.message}}
    await send_json(send, exc.status, payload, headers)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # e.g. [[[[...]]]] a thousand levels deep
        raise RequestError("The request body is JSON nested too deeply.") from exc
