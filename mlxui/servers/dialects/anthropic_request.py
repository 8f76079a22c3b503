"""An Anthropic Messages request, checked and translated to an OpenAI chat request.

What maps where: `system` (a string or text blocks) becomes the first message; `text` and base64
or URL `image` blocks become content parts (image → an `image_url` data URL); an assistant's
`tool_use` blocks become its `tool_calls`; a user's `tool_result` blocks become `tool` messages
placed before the rest of that turn; `thinking` blocks the client sends back are dropped (the
model server cannot take them). `tools` become function tools, `tool_choice` OpenAI's form
("none" drops the tools: mlx_lm.server does not read `tool_choice`). `stop_sequences` are not
sent: the answer's translation cuts the text itself, so it knows which one matched. Anything it
cannot translate is a `RequestError` (400), never silently dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SAMPLING = {"temperature": (int, float), "top_p": (int, float), "top_k": (int,)}


class RequestError(ValueError):
    """The request cannot be served as sent: Anthropic's invalid_request_error, status 400."""


@dataclass
class MessagesRequest:
    model: str
    openai: dict[str, Any]  # the OpenAI chat body (no `model`, no `stream`)
    stream: bool = False
    stop_sequences: list[str] = field(default_factory=list)


def parse_messages_request(body: Any, *, counting: bool = False) -> MessagesRequest:
    """`body` (decoded JSON) as a `MessagesRequest`. `counting` (count_tokens) needs no max_tokens."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: a model or profile name is required (GET /v1/models lists them).")
    openai: dict[str, Any] = {"messages": _system(body.get("system")) + _messages(body.get("messages"))}
    if not counting:
        max_tokens = body.get("max_tokens")
        if not _is_int(max_tokens) or max_tokens < 1:
            raise RequestError("max_tokens: a positive integer is required.")
        openai["max_tokens"] = max_tokens
        for name, types in SAMPLING.items():
            value = body.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, types) or value < 0:
                    raise RequestError(f"{name}: must be a non-negative number.")
                openai[name] = value
    tools = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), tools)
    if tools and choice != "none":
        openai["tools"] = tools
        if choice is not None:
            openai["tool_choice"] = choice
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        openai["chat_template_kwargs"] = {"enable_thinking": thinking["type"] == "enabled"}
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream: must be true or false.")
    return MessagesRequest(model, openai, stream, _stop_sequences(body.get("stop_sequences")))


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        return [{"role": "system", "content": "".join(_text_of(b, "system") for b in system)}]
    raise RequestError("system: must be a string or a list of text blocks.")


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: a non-empty list of messages is required.")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise RequestError(f"{where}: needs a role of 'user' or 'assistant'.")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
        elif isinstance(content, list):
            translate = _assistant_turn if message["role"] == "assistant" else _user_turn
            out.extend(translate(content, where))
        else:
            raise RequestError(f"{where}.content: must be a string or a list of content blocks.")
    return out


def _user_turn(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = _block_type(block, f"{where}.content[{j}]")
        if kind == "tool_result":
            results.append(_tool_result(block, f"{where}.content[{j}]"))
        elif kind == "text":
            parts.append({"type": "text", "text": _text_of(block, where)})
        elif kind == "image":
            parts.append(_image(block, f"{where}.content[{j}]"))
        else:
            raise RequestError(f"{where}.content[{j}]: a user turn cannot hold a {kind!r} block here.")
    return results + ([{"role": "user", "content": _content(parts)}] if parts else [])


def _assistant_turn(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = _block_type(block, f"{where}.content[{j}]")
        if kind == "text":
            text.append(_text_of(block, where))
        elif kind == "tool_use":
            calls.append(_tool_use(block, f"{where}.content[{j}]"))
        elif kind not in ("thinking", "redacted_thinking"):
            raise RequestError(f"{where}.content[{j}]: an assistant turn cannot hold a {kind!r} block.")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return [message]


def _tool_use(block: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise RequestError(f"{where}: a tool_use block needs an id and a name.")
    arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
    return {
        "id": block["id"],
        "type": "function",
        "function": {"name": block["name"], "arguments": arguments},
    }


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(block.get("tool_use_id"), str):
        raise RequestError(f"{where}: a tool_result block needs the tool_use_id it answers.")
    content = block.get("content", "")
    if isinstance(content, list):
        for k, part in enumerate(content):
            if _block_type(part, f"{where}.content[{k}]") != "text":
                raise RequestError(f"{where}.content[{k}]: only text can go back in a tool_result here.")
        content = "".join(_text_of(part, where) for part in content)
    elif not isinstance(content, str):
        raise RequestError(f"{where}.content: must be a string or a list of text blocks.")
    if block.get("is_error") is True:
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not media.startswith("image/") or not isinstance(data, str):
            raise RequestError(f"{where}.source: base64 images need an image/* media_type and data.")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise RequestError(f"{where}.source: an image needs a base64 or url source.")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestError("tools: must be a list.")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise RequestError(f"tools[{i}]: needs a name.")
        if tool.get("type") not in (None, "custom"):
            raise RequestError(f"tools[{i}]: {tool['type']!r} is one of Anthropic's own tools; only custom tools "
                               "(name, description, input_schema) reach a local model.")  # fmt: skip
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise RequestError(f"tools[{i}].input_schema: a JSON schema object is required.")
        function = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        names = {tool["function"]["name"] for tool in tools}
        if choice.get("name") not in names:
            raise RequestError(f"tool_choice: no tool named {choice.get('name')!r} in tools.")
        return {"type": "function", "function": {"name": choice["name"]}}
    raise RequestError("tool_choice: type must be 'auto', 'any', 'tool' or 'none'.")


def _stop_sequences(stops: Any) -> list[str]:
    if stops is None:
        return []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise RequestError("stop_sequences: must be a list of non-empty strings.")
    return stops


def _block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise RequestError(f"{where}: a content block needs a type.")
    return block["type"]


def _text_of(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
        raise RequestError(f"{where}: expected a text block with a string `text`.")
    return block["text"]


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text alone as one string (every server and template takes that); parts when images come."""
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
