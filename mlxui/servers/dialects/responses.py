"""OpenAI Responses on the gateway: `POST /v1/responses` (plain and streamed), `GET` and `DELETE
/v1/responses/{id}`.

A request is translated to OpenAI chat (`responses_request.py`) and sent through `ModelCalls`,
always streamed from the model server, so a client that goes away mid-answer frees the model at
once, plain requests included; the chunks become the Responses object and its events
(`responses_output.py`). Finished responses are kept in a bounded memory store
(`response_store.py`) unless the request says `store: false`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mlxui.servers.dialects.response_store import ResponseStore
from mlxui.servers.dialects.responses_output import Event, ResponseBuilder
from mlxui.servers.dialects.responses_request import ResponsesRequest, bad_request, parse_request
from mlxui.servers.model_calls import CallError, ModelCalls
from mlxui.servers.relay import (
    SSE_HEADERS,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    send_call_error,
    send_error,
    send_json,
)

BodyReader = Callable[[Scope, Receive, Send], Awaitable[bytes | None]]
PATH = "/v1/responses"


class ResponsesDialect:
    """Serves the `/v1/responses` routes; the gateway hands it requests with its body reader."""

    def __init__(self, calls: ModelCalls, store: ResponseStore | None = None) -> None:
        self.calls = calls
        self.store = store if store is not None else ResponseStore()

    @staticmethod
    def serves(path: str) -> bool:
        return path == PATH or path.startswith(PATH + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send, read_body: BodyReader) -> None:
        path: str = scope["path"].rstrip("/")
        method: str = scope["method"]
        if path == PATH:
            if method == "POST":
                await self.create(scope, receive, send, read_body)
            else:
                await _refuse_method(send, path, "POST")
            return
        response_id = path.removeprefix(PATH + "/")
        if "/" in response_id:
            await send_error(send, 404, f"No such endpoint: {method} {path}", "invalid_request_error",
                             "not_found")  # fmt: skip
        elif method == "GET":
            stored = self.store.get(response_id)
            if stored is None:
                await send_call_error(send, _not_found(response_id))
            else:
                await send_json(send, 200, stored.response)
        elif method == "DELETE":
            if self.store.delete(response_id):
                await send_json(send, 200, {"id": response_id, "object": "response", "deleted": True})
            else:
                await send_call_error(send, _not_found(response_id))
        else:
            await _refuse_method(send, path, "GET or DELETE")

    async def create(self, scope: Scope, receive: Receive, send: Send, read_body: BodyReader) -> None:
        raw = await read_body(scope, receive, send)
        if raw is None:
            return  # too large (already answered) or the client left
        try:
            request = parse_request(*self._body_and_history(raw))
        except CallError as exc:
            await send_call_error(send, exc)
            return
        builder = ResponseBuilder(request.model, request.echo)
        await self._answer(request, builder, receive, send)

    def _body_and_history(self, raw: bytes) -> tuple[Any, list[dict[str, Any]] | None]:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"Request body is not valid JSON: {exc}", "invalid_json") from exc
        except RecursionError as exc:
            raise bad_request("Request body is JSON nested too deeply.", "invalid_json") from exc
        previous = body.get("previous_response_id") if isinstance(body, dict) else None
        if previous is None:
            return body, None
        stored = self.store.get(previous) if isinstance(previous, str) else None
        if stored is None:
            raise bad_request(f"Previous response with id {previous!r} not found (mlxui keeps the last "
                              f"{self.store.max_items} stored responses for {self.store.max_age_s / 3600:g} "
                              "h, in memory).", "previous_response_not_found")  # fmt: skip
        return body, stored.history

    async def _answer(self, request: ResponsesRequest, builder: ResponseBuilder, receive: Receive,
                      send: Send) -> None:  # fmt: skip
        streaming = False
        watch: DisconnectWatch | None = None
        try:
            async with self.calls.chat(request.model, request.chat_body) as answer:
                async with DisconnectWatch(receive, answer.upstream) as watch:
                    if request.stream:
                        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                        streaming = True
                        await _send_events(send, builder.start())
                    async for chunk in answer.chunks():
                        events = builder.feed(chunk)
                        if streaming and events:
                            await _send_events(send, events)
        except CallError as exc:
            if watch is not None and watch.client_gone:
                return  # closing the upstream connection stopped the generation; nobody to tell
            if not streaming:
                await send_call_error(send, exc)
                return
            await _send_events(send, builder.failed(exc.code, exc.message), more=False)
            return
        final = builder.finish()
        if request.store:
            self.store.put(builder.response, request.conversation + builder.history())
        if streaming:
            await _send_events(send, final, more=False)
        else:
            await send_json(send, 200, builder.response)


async def _send_events(send: Send, events: list[Event], *, more: bool = True) -> None:
    body = b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + json.dumps(event).encode() + b"\n\n"
        for event in events
    )
    await send({"type": "http.response.body", "body": body, "more_body": more})


def _not_found(response_id: str) -> CallError:
    return CallError(404, "response_not_found", f"No stored response with id {response_id!r} (mlxui keeps "
                     "recent responses in memory, and none made with store: false).")  # fmt: skip


async def _refuse_method(send: Send, path: str, allowed: str) -> None:
    await send_error(send, 405, f"{path} takes {allowed}.", "invalid_request_error", "method_not_allowed")
