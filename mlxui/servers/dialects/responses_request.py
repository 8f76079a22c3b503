"""An OpenAI Responses request (`POST /v1/responses`) turned into the OpenAI chat request a model
server takes. Everything not translated is refused with a 400 naming the field, never dropped.

Input items map to chat messages: `message` items (or bare `{role, content}`) with `input_text` /
`output_text` / `input_image` parts; `function_call` items become the assistant's `tool_calls`,
`function_call_output` items `tool` messages. `reasoning` items are left out of the history, as
chat templates leave earlier thinking out of the prompt. `instructions` become the system message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlxui.servers.model_calls import CallError

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = frozenset({"input_text", "output_text", "text", "refusal", "summary_text", "reasoning_text"})
# Accepted and echoed, or harmless hints with nothing to translate to for a local model.
IGNORED_FIELDS = frozenset(
    {"metadata", "user", "parallel_tool_calls", "truncation", "service_tier", "include", "reasoning",
     "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "top_logprobs", "max_tool_calls",
     "stream_options"}
)  # fmt: skip
REFUSED_FIELDS = {
    "background": "background responses are not served by mlxui",
    "conversation": "conversations are not kept by mlxui; use previous_response_id",
    "prompt": "stored prompts are not served by mlxui",
}


@dataclass(frozen=True)
class ResponsesRequest:
    """What a Responses request asks: the chat body for the model server, the conversation so far
    without `instructions` (kept with the response for the next turn) and the fields the response
    object echoes."""

    model: str
    stream: bool
    store: bool
    chat_body: dict[str, Any]
    conversation: list[dict[str, Any]]
    echo: dict[str, Any]


def bad_request(message: str, code: str = "invalid_request") -> CallError:
    return CallError(400, code, message)


def parse_request(body: Any, history: list[dict[str, Any]] | None) -> ResponsesRequest:
    """Translate `body`; `history` is the conversation of `previous_response_id`, when given."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("Request needs a `model` (a model or profile name).", "model_required")
    for field, why in REFUSED_FIELDS.items():
        if body.get(field) not in (None, False):
            raise bad_request(f"`{field}` is not supported: {why}.", "unsupported_parameter")
    known = IGNORED_FIELDS | REFUSED_FIELDS.keys() | {
        "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature",
        "top_p", "stream", "store", "previous_response_id", "text",
    }  # fmt: skip
    unknown = sorted(set(body) - known)
    if unknown:
        raise bad_request(f"Unsupported parameter(s): {', '.join(unknown)}.", "unsupported_parameter")
    _check_text_format(body.get("text"))
    instructions = _optional(body, "instructions", str)
    turn = input_messages(body.get("input"))
    if not turn and not history:
        raise bad_request("`input` is required: a string or a list of input items.", "input_required")
    conversation = (history or []) + turn
    system = [{"role": "system", "content": instructions}] if instructions else []
    chat: dict[str, Any] = {"messages": system + conversation, "stream": True}
    max_tokens = _optional(body, "max_output_tokens", int)
    if max_tokens is not None:
        if max_tokens < 1:
            raise bad_request("`max_output_tokens` must be at least 1.")
        chat["max_tokens"] = max_tokens
    for field in ("temperature", "top_p"):
        value = _optional(body, field, (int, float))
        if value is not None:
            chat[field] = value
    tool_choice = body.get("tool_choice", "auto")
    tools = chat_tools(body.get("tools"))
    if tools and tool_choice != "none":
        chat["tools"] = tools
        chat["tool_choice"] = chat_tool_choice(tool_choice)
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_tokens,
        "temperature": chat.get("temperature"),
        "top_p": chat.get("top_p"),
        "tools": body.get("tools") or [],
        "tool_choice": tool_choice,
        "previous_response_id": body.get("previous_response_id"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "text": {"format": {"type": "text"}},
        "truncation": body.get("truncation") or "disabled",
        "user": body.get("user"),
    }
    stream, store = _optional(body, "stream", bool), _optional(body, "store", bool)
    return ResponsesRequest(model, bool(stream), store is not False, chat, conversation, echo)


def input_messages(value: Any) -> list[dict[str, Any]]:
    """Responses `input` (a string or a list of items) as OpenAI chat messages."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise bad_request("`input` must be a string or a list of input items.")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object.")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = _tool_call(item, where)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # its text and its calls: one turn
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request(f"{where}.call_id is required.")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _output_text(item, where)})
        elif kind == "reasoning":
            continue  # earlier thinking stays out of the prompt, as chat templates do
        else:
            raise bad_request(
                f"{where}: input items of type {kind!r} are not supported.", "unsupported_input"
            )
    return messages


def chat_tools(value: Any) -> list[dict[str, Any]]:
    """Responses function tools as chat tools; any other tool type is refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("`tools` must be a list.")
    tools = []
    for index, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            raise bad_request(f"tools[{index}]: only function tools are supported, not {kind!r}.",
                              "unsupported_tool")  # fmt: skip
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"tools[{index}].name is required.")
        function: dict[str, Any] = {"name": name, "parameters": tool.get("parameters") or {"type": "object"}}
        if tool.get("description"):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def chat_tool_choice(value: Any) -> Any:
    """`auto` / `required` / `{type: function, name}` in chat's spelling."""
    if value in ("auto", "required", "none"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    raise bad_request("`tool_choice` must be 'auto', 'required', 'none' or {type: function, name}.")


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = ROLES.get(item.get("role", ""))
    if role is None:
        raise bad_request(f"{where}.role must be one of {', '.join(ROLES)}.")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of content parts.")
    parts = [_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):  # plain text: what every server takes
        return {"role": role, "content": "".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS:
        text = part.get("text", part.get("refusal"))
        if not isinstance(text, str):
            raise bad_request(f"{where}.text must be a string.")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise bad_request(f"{where}: images need an `image_url` (a data: or http URL); file ids "
                              "are not served by mlxui.", "unsupported_input")  # fmt: skip
        return {"type": "image_url", "image_url": {"url": url}}
    raise bad_request(f"{where}: content parts of type {kind!r} are not supported.", "unsupported_input")


def _tool_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise bad_request(f"{where}: a function_call needs `call_id` and `name`.")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments or "{}"}}


def _output_text(item: dict[str, Any], where: str) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [_part(part, f"{where}.output[{i}]") for i, part in enumerate(output)]
        if all(part["type"] == "text" for part in parts):
            return "".join(part["text"] for part in parts)
    raise bad_request(f"{where}.output must be a string or a list of text parts.", "unsupported_input")


def _optional(body: dict[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise bad_request(f"`{field}` has the wrong type ({type(value).__name__}).", "invalid_type")
    return value


def _check_text_format(text: Any) -> None:
    if text is None:
        return
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise bad_request("`text.format`: structured output (json_schema, json_object) is not supported "
                          "by mlxui's model servers yet.", "unsupported_parameter")  # fmt: skip
