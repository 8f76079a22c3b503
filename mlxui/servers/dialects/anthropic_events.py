"""OpenAI chat chunks → Anthropic Messages stream events, and those events → one whole message.

The model server is always asked for a stream; `AnswerEvents` turns its chunks into the content
block events of Anthropic's stream (a thinking block from `reasoning`, a text block from
`content`, one tool_use block per tool call with its arguments as `input_json_delta`), and the
whole-message answer is these same events folded up (`assemble`), so both answers agree.

Stop sequences are matched here, on the text: the text up to a match is sent, the match is not,
and the caller stops reading, which closes the connection and stops the generation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
Event = dict[str, Any]


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def message_start(msg_id: str, model: str) -> Event:
    usage = {"input_tokens": 0, "output_tokens": 0}  # the real numbers come with message_delta
    message = {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": usage}  # fmt: skip
    return {"type": "message_start", "message": message}


class AnswerEvents:
    """Translate one streamed answer; after `events()` ends, `stop_reason`, `stop_sequence` and
    the token counts describe it (also in the final message_delta event)."""

    def __init__(self, stop_sequences: list[str]) -> None:
        self.stops = StopMatcher(stop_sequences)
        self.stop_reason = "end_turn"
        self.stop_sequence: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self._index = -1
        self._open: str | None = None  # the type of the open content block
        self._tools_used = False

    async def events(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Event]:
        finish: str | None = None
        usage: dict[str, Any] | None = None
        async for chunk in chunks:
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                self.output_tokens += 1  # a chunk per token; the usage chunk corrects it at the end
                for event in self._delta(choice.get("delta") or {}):
                    yield event
                finish = choice.get("finish_reason") or finish
            if self.stop_sequence is not None:
                break  # leaving the stream closes the upstream connection: the generation stops
        if self.stop_sequence is None:
            for event in self._text(self.stops.flush()):
                yield event
        if self._open is not None:
            yield {"type": "content_block_stop", "index": self._index}
        if usage is not None:
            self.input_tokens = int(usage.get("prompt_tokens") or 0)
            self.output_tokens = int(usage.get("completion_tokens") or 0)
        if self.stop_sequence is not None:
            self.stop_reason = "stop_sequence"
        elif self._tools_used:
            self.stop_reason = "tool_use"
        else:
            self.stop_reason = STOP_REASONS.get(finish or "stop", "end_turn")
        delta = {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence}
        usage_out = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        yield {"type": "message_delta", "delta": delta, "usage": usage_out}

    def _delta(self, delta: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")  # mlx_lm / mlx_vlm
        if reasoning:
            events += self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            events.append(self._block_delta({"type": "thinking_delta", "thinking": reasoning}))
        if delta.get("content"):
            events += self._text(self.stops.feed(delta["content"]))
            if self.stops.matched is not None:
                self.stop_sequence = self.stops.matched
                return events
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            if function.get("name") or self._open != "tool_use":
                tool_id = call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"
                block = {"type": "tool_use", "id": tool_id, "name": function.get("name") or "", "input": {}}
                events += self._block("tool_use", block, new=True)
                self._tools_used = True
            if function.get("arguments"):
                partial = {"type": "input_json_delta", "partial_json": function["arguments"]}
                events.append(self._block_delta(partial))
        return events

    def _text(self, text: str) -> list[Event]:
        if not text:
            return []
        events = self._block("text", {"type": "text", "text": ""})
        events.append(self._block_delta({"type": "text_delta", "text": text}))
        return events

    def _block(self, kind: str, start: dict[str, Any], *, new: bool = False) -> list[Event]:
        """Open a block of `kind` unless one is open (`new`: always a fresh one)."""
        if self._open == kind and not new:
            return []
        events: list[Event] = []
        if self._open is not None:
            events.append({"type": "content_block_stop", "index": self._index})
        self._index += 1
        self._open = kind
        events.append({"type": "content_block_start", "index": self._index, "content_block": start})
        return events

    def _block_delta(self, delta: dict[str, Any]) -> Event:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}


class StopMatcher:
    """Finds the first stop sequence in streamed text, holding back a tail that may begin one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.pending = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """The text that is safe to send now."""
        if not self.stops:
            return text
        self.pending += text
        hits = [(self.pending.find(s), s) for s in self.stops if s in self.pending]
        if hits:
            at, self.matched = min(hits)
            out, self.pending = self.pending[:at], ""
            return out
        cut = len(self.pending) - self.hold
        if cut <= 0:
            return ""
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def assemble(msg_id: str, model: str, events: list[Event]) -> dict[str, Any]:
    """The whole message the events of one answer describe."""
    blocks: list[dict[str, Any]] = []
    partial_json: dict[int, str] = {}
    final: Event = {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {}}
    for event in events:
        if event["type"] == "content_block_start":
            blocks.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "input_json_delta":
                partial_json[event["index"]] = partial_json.get(event["index"], "") + delta["partial_json"]
        elif event["type"] == "message_delta":
            final = event
    for index, text in partial_json.items():
        blocks[index]["input"] = _tool_input(text)
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": final["delta"]["stop_reason"], "stop_sequence": final["delta"]["stop_sequence"],
            "usage": final["usage"]}  # fmt: skip


def _tool_input(text: str) -> Any:
    """A tool call's arguments as JSON; text that is not JSON is kept, wrapped, not dropped."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"_raw_arguments": text}
    return value if isinstance(value, dict) else {"value": value}
