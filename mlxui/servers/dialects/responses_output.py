"""A model server's streamed OpenAI chat chunks turned into an OpenAI Responses object and its
stream of events (`response.created` ... `response.completed`, each with its `sequence_number`).

Output items open in the order their deltas arrive: a `reasoning` item for the model's thinking
(delta `reasoning`, or mlx_vlm's `reasoning_content`), a `message` item with one `output_text`
part, a `function_call` item per tool call. An item closes when a delta of another kind (or
another tool call) arrives, or at the end. A plain request is served from the same stream: the
builder runs without anyone reading its events.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class _Item:
    kind: str  # "reasoning" | "message" | "function_call"
    id: str
    output_index: int
    text: str = ""  # the thinking, the message's text or the call's arguments
    call_id: str = ""
    name: str = ""
    tool_index: int | None = None
    status: str = "in_progress"

    def part(self, text: str) -> dict[str, Any]:
        if self.kind == "reasoning":
            return {"type": "reasoning_text", "text": text}
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def as_output(self, *, empty: bool = False) -> dict[str, Any]:
        text = "" if empty else self.text
        if self.kind == "function_call":
            return {"id": self.id, "type": "function_call", "status": self.status, "call_id": self.call_id,
                    "name": self.name, "arguments": text}  # fmt: skip
        content = [] if empty else [self.part(text)]
        if self.kind == "reasoning":
            return {
                "id": self.id,
                "type": "reasoning",
                "status": self.status,
                "summary": [],
                "content": content,
            }
        return {
            "id": self.id,
            "type": "message",
            "status": self.status,
            "role": "assistant",
            "content": content,
        }


class ResponseBuilder:
    """Feed it chat chunks; it gives back the Responses events each one makes, and the response."""

    def __init__(self, model: str, echo: dict[str, Any], response_id: str | None = None) -> None:
        self.response: dict[str, Any] = {
            "id": response_id or new_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "error": None,
            "incomplete_details": None,
            "model": model,
            "output": [],
            "usage": None,
            **echo,
        }
        self.items: list[_Item] = []
        self.open: _Item | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self._sequence = 0

    def start(self) -> list[Event]:
        return [self._event("response.created", response=self._snapshot()),
                self._event("response.in_progress", response=self._snapshot())]  # fmt: skip

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events one chat chunk makes (none for a role-only or usage chunk)."""
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                events += self._text("reasoning", reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                events += self._text("message", content)
            for call in delta.get("tool_calls") or []:
                events += self._tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self) -> list[Event]:
        """Close the last item; the final event carries the whole response."""
        truncated = self.finish_reason == "length"
        events = self._close(truncated)
        usage = self.usage or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        self.response["usage"] = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        }
        self.response["output"] = [item.as_output() for item in self.items]
        if truncated:
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
            return events + [self._event("response.incomplete", response=self._snapshot())]
        self.response["status"] = "completed"
        return events + [self._event("response.completed", response=self._snapshot())]

    def failed(self, code: str, message: str) -> list[Event]:
        """The events that end a stream the model server broke off."""
        events = self._close(truncated=True)
        self.response["output"] = [item.as_output() for item in self.items]
        self.response["status"] = "failed"
        self.response["error"] = {
            "code": "server_error",
            "message": message,
        }  # the SDK's codes are a fixed set
        return events + [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=self._snapshot()),
        ]

    def history(self) -> list[dict[str, Any]]:
        """The output as chat messages (thinking left out), for `previous_response_id`."""
        text = "".join(item.text for item in self.items if item.kind == "message")
        calls = [
            {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.text}}
            for item in self.items
            if item.kind == "function_call"
        ]
        if not text and not calls:
            return []
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        return [message]

    def _text(self, kind: str, delta: str) -> list[Event]:
        events: list[Event] = []
        item = self.open
        if item is None or item.kind != kind:
            events += self._close(truncated=False)
            item = self._open(kind, new_id("rs" if kind == "reasoning" else "msg"))
            events += self._added(item)
        item.text += delta
        where = {"item_id": item.id, "output_index": item.output_index, "content_index": 0}
        if kind == "reasoning":
            return events + [self._event("response.reasoning_text.delta", **where, delta=delta)]
        return events + [self._event("response.output_text.delta", **where, delta=delta, logprobs=[])]

    def _tool_call(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        index = call.get("index", len([i for i in self.items if i.kind == "function_call"]))
        function = call.get("function") or {}
        item = self.open
        same_call = item is not None and item.kind == "function_call" and item.tool_index == index
        if item is None or not same_call or (call.get("id") and item.call_id != call["id"]):
            events += self._close(truncated=False)
            item = self._open("function_call", new_id("fc"))
            item.tool_index = index
            item.call_id = call.get("id") or new_id("call")
            item.name = function.get("name") or ""
            events += self._added(item)
        elif function.get("name") and not item.name:
            item.name = function["name"]
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        if arguments:
            item.text += arguments
            events.append(self._event("response.function_call_arguments.delta", item_id=item.id,
                                      output_index=item.output_index, delta=arguments))  # fmt: skip
        return events

    def _open(self, kind: str, item_id: str) -> _Item:
        item = _Item(kind, item_id, len(self.items))
        self.items.append(item)
        self.open = item
        return item

    def _added(self, item: _Item) -> list[Event]:
        events = [self._event("response.output_item.added", output_index=item.output_index,
                              item=item.as_output(empty=True))]  # fmt: skip
        if item.kind != "function_call":
            events.append(self._event("response.content_part.added", item_id=item.id,
                                      output_index=item.output_index, content_index=0, part=item.part("")))  # fmt: skip
        return events

    def _close(self, truncated: bool) -> list[Event]:
        item, self.open = self.open, None
        if item is None:
            return []
        item.status = "incomplete" if truncated else "completed"
        where = {"item_id": item.id, "output_index": item.output_index}
        if item.kind == "function_call":
            events = [self._event("response.function_call_arguments.done", **where, name=item.name,
                                  arguments=item.text)]  # fmt: skip
        else:
            done = "response.reasoning_text.done" if item.kind == "reasoning" else "response.output_text.done"
            extra = {} if item.kind == "reasoning" else {"logprobs": []}
            events = [
                self._event(done, **where, content_index=0, text=item.text, **extra),
                self._event(
                    "response.content_part.done", **where, content_index=0, part=item.part(item.text)
                ),
            ]
        events.append(self._event("response.output_item.done", output_index=item.output_index,
                                  item=item.as_output()))  # fmt: skip
        return events

    def _snapshot(self) -> dict[str, Any]:
        return {**self.response, "output": list(self.response["output"])}

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event
