"""A plain (non-streamed) OpenAI answer, assembled by the gateway from a streamed one.

`mlx_lm.server` notices a client that left only when it next writes, so a non-streamed request
would run to its end after its client gave up (docs §6). The gateway therefore asks the server
for a stream also when the client wants one JSON answer, folds the chunks into the object
`mlx_lm.server` would have sent (id, object `chat.completion` / `text_completion`, choices with
`message` or `text`, `finish_reason`, tool calls, reasoning, logprobs, usage), and closes the
upstream connection when the client goes away, which stops the generation at once.
"""

from __future__ import annotations

import json
from typing import Any

from mlxui.servers.model_calls import ChatAnswer
from mlxui.servers.process import ManagedServer
from mlxui.servers.relay import (
    DisconnectWatch,
    Receive,
    Send,
    forward_whole,
    send_error,
    send_json,
    send_request,
)
from mlxui.servers.upstream import UpstreamError, UpstreamExchange

CHAT_PATH = "/v1/chat/completions"


async def relay_assembled(
    upstream: UpstreamExchange,
    path: str,
    body: dict[str, Any],
    receive: Receive,
    send: Send,
    server: ManagedServer,
    asked: str,
) -> None:
    """Send `body` (a plain request for `path`) as a streamed one; answer the client one JSON object
    naming the model `asked`. Errors before the stream are forwarded as the relay forwards them."""
    request = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with DisconnectWatch(receive, upstream) as watch:
        if not await send_request(upstream, path, json.dumps(request).encode(), send, server, watch):
            return
        if upstream.status != 200 or not upstream.content_type.startswith("text/event-stream"):
            await forward_whole(upstream, send, server, watch)
            return
        answer = PlainAnswer(chat=path == CHAT_PATH, model=asked)
        broken: str | None = None
        try:
            async for chunk in ChatAnswer(server, upstream).chunks():
                answer.feed(chunk)
        except (UpstreamError, OSError, ValueError) as exc:  # ValueError: a chunk that is not JSON
            broken = str(exc) or type(exc).__name__
    if watch.client_gone:
        return  # nobody to tell; closing the upstream connection stopped the generation
    if broken is not None:
        server.record_error(broken)
        await send_error(send, 502, broken, "upstream_error", "upstream_died")
        return
    await send_json(send, 200, answer.whole())


class PlainAnswer:
    """Streamed chunks folded into one non-streamed answer of `mlx_lm.server`'s shape."""

    def __init__(self, *, chat: bool, model: str) -> None:
        self.chat = chat
        self.head: dict[str, Any] = {"id": "", "object": "chat.completion" if chat else "text_completion",
                                     "model": model, "created": 0}  # fmt: skip
        self.choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> None:
        for key in ("id", "created", "system_fingerprint"):
            if chunk.get(key) and not self.head.get(key):
                self.head[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            self.choices.setdefault(index, _Choice()).feed(choice, self.chat)

    def whole(self) -> dict[str, Any]:
        choices = [self.choices[i].whole(i, self.chat) for i in sorted(self.choices)]
        out = {**self.head, "choices": choices or [_Choice().whole(0, self.chat)]}
        if self.usage is not None:
            out["usage"] = self.usage
        return out


class _Choice:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_key = "reasoning"
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[Any] = []
        self.finish_reason: str | None = None

    def feed(self, choice: dict[str, Any], chat: bool) -> None:
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            self.logprobs += logprobs["content"]
        if not chat:
            self.text.append(choice.get("text") or "")
            return
        delta = choice.get("delta") or {}
        self.text.append(delta.get("content") or "")
        for key in ("reasoning", "reasoning_content"):  # mlx_lm's field, mlx_vlm's field
            if delta.get(key):
                self.reasoning.append(delta[key])
                self.reasoning_key = key
        for call in delta.get("tool_calls") or []:
            self._add_call(call)

    def _add_call(self, call: dict[str, Any]) -> None:
        """A tool call arrives whole (mlx_lm) or in pieces by `index` (OpenAI's way): merge them."""
        index = call.get("index", len(self.tool_calls))
        known = self.tool_calls.get(index)
        function = call.get("function") or {}
        if known is None:
            self.tool_calls[index] = {
                "function": {
                    "name": function.get("name") or "",
                    "arguments": function.get("arguments") or "",
                },
                "type": call.get("type") or "function",
                "id": call.get("id") or "",
            }
            return
        known["function"]["name"] += function.get("name") or ""
        known["function"]["arguments"] += function.get("arguments") or ""
        known["id"] = known["id"] or call.get("id") or ""

    def whole(self, index: int, chat: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"index": index, "finish_reason": self.finish_reason}
        if self.logprobs:
            out["logprobs"] = {"content": self.logprobs}
        if not chat:
            out["text"] = "".join(self.text)
            return out
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.reasoning:
            message[self.reasoning_key] = "".join(self.reasoning)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        out["message"] = message
        return out
