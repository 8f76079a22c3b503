"""What a model server would silently drop or answer badly is refused here, with a 400 that says
why, before the request reaches a server: one set of checks for every dialect (docs §5).

Each dialect first turns its request into an OpenAI body (chat: `messages`; completions:
`prompt`); `RequestChecks.check` then looks at it against the model's `LocalEntry`: tools for a
model whose chat template cannot render them, images for a model that cannot see, `n > 1`,
`response_format` JSON modes on `mlx_lm.server` (which does not read the field), a `tool_choice`
that forces a call (no server reads it; "none" is honoured by leaving the tools out), an empty
conversation, and a prompt longer than the model's context, counted with the model's own
tokenizer in a worker thread. The count is skipped when the prompt is too short to matter: no
tokenizer makes more tokens than the text has UTF-8 bytes, template additions aside.
"""

from __future__ import annotations

import json
from typing import Any

from mlxui.hub.local import LocalEntry
from mlxui.servers.call_error import CallError
from mlxui.servers.dialects.token_count import TokenCounter, TokenCountError

TEMPLATE_SLACK_TOKENS = 1024  # room for what a chat template adds around the messages
IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
PLAIN_FORMATS = (None, "text")


def refuse(code: str, message: str) -> CallError:
    return CallError(400, code, message)


class RequestChecks:
    """The checks, with the tokenizer cache they count with (shared with count_tokens)."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    async def check(self, body: dict[str, Any], model: str, kind: str, entry: LocalEntry | None) -> None:
        """Raise CallError(400, ...) when `body` (for server `kind` "lm" or "vlm", the model the
        client calls `model`) cannot be served as asked; `entry` None: capabilities unknown."""
        check_fields(body, model, kind, entry)
        await self.check_length(body, model, entry)

    async def check_length(self, body: dict[str, Any], model: str, entry: LocalEntry | None) -> None:
        if entry is None or not entry.capabilities.context_length or not entry.path.is_dir():
            return
        context = entry.capabilities.context_length
        if _text_bytes(body) + TEMPLATE_SLACK_TOKENS < context:
            return  # cannot reach the context: no need to load a tokenizer
        try:
            if "messages" in body:
                count = await self.counter.count(entry.path, body["messages"], body.get("tools"))
            elif isinstance(body.get("prompt"), str):
                count = await self.counter.count_text(entry.path, body["prompt"])
            else:
                return
        except TokenCountError as exc:  # the server would fail the same way: say so now
            raise refuse("cannot_render_prompt", f"model {model!r}: {exc}") from exc
        if count >= context:
            raise refuse(
                "context_length_exceeded",
                f"The prompt is {count:,} tokens, but model {model!r} has a context of {context:,} "
                "tokens: shorten the conversation (the answer needs room too).",
            )


def check_fields(body: dict[str, Any], model: str, kind: str, entry: LocalEntry | None) -> None:
    """The checks that need no tokenizer."""
    if "messages" in body or "prompt" not in body:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise refuse("messages_required", "`messages` must be a list of messages.")
        if not messages:
            raise refuse("messages_required", "`messages` is empty: send at least one message.")
    n = body.get("n")
    if n is not None and n != 1:
        raise refuse(
            "unsupported_parameter",
            f"`n` = {n!r} is not supported: a model server gives one choice per request; send "
            "separate requests instead (or leave out `n`).",
        )
    response_format = body.get("response_format")
    if not (response_format is None or _format_type(response_format) in PLAIN_FORMATS) and kind != "vlm":
        raise refuse(
            "unsupported_parameter",
            f"`response_format` {_format_type(response_format)!r} is not supported: mlx_lm.server "
            "cannot constrain the answer to JSON; leave out `response_format` (or ask for JSON in the "
            "prompt).",
        )
    _tool_choice(body)
    caps = entry.capabilities if entry is not None else None
    if caps is not None and body.get("tools") and not caps.tools:
        raise refuse(
            "tools_unsupported",
            f"model {model!r} cannot call tools: its chat template has no tool support; leave out "
            "`tools` or use a model that can call tools.",
        )
    if caps is not None and not caps.vision and _has_images(body.get("messages")):
        raise refuse(
            "images_unsupported", f"model {model!r} cannot read images: leave them out or use a vision model."
        )


def _tool_choice(body: dict[str, Any]) -> None:
    """The model servers do not read `tool_choice`. "none" is honoured here by leaving the tools
    out (the model then cannot call one); forcing a call ("required", a named function) cannot be
    honoured and is refused."""
    choice = body.get("tool_choice")
    if choice in (None, "auto"):
        return
    if choice == "none":
        body.pop("tools", None)
        body.pop("tool_choice", None)
        return
    raise refuse(
        "unsupported_parameter",
        f"`tool_choice` {json.dumps(choice)} cannot be honoured: the model decides itself whether to "
        "call a tool; send 'auto' (or leave it out), or 'none' to answer without tools.",
    )


def _format_type(response_format: Any) -> Any:
    return response_format.get("type") if isinstance(response_format, dict) else response_format


def _has_images(messages: Any) -> bool:
    return isinstance(messages, list) and any(
        isinstance(part, dict) and part.get("type") in IMAGE_PARTS
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
    )


def _text_bytes(body: dict[str, Any]) -> int:
    """An upper bound of the prompt's text in UTF-8 bytes (images left out: they are not text)."""
    if isinstance(body.get("prompt"), str):
        return len(body["prompt"].encode())
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    textual = [
        {
            **m,
            "content": [
                p for p in m["content"] if not (isinstance(p, dict) and p.get("type") in IMAGE_PARTS)
            ],
        }
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        else m
        for m in messages
    ]
    return len(json.dumps([textual, body.get("tools")], ensure_ascii=False).encode())
