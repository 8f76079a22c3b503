"""An Ollama `/api/chat` or `/api/generate` request as the OpenAI chat body `ModelCalls` sends.

Nothing is dropped silently: a field mlxui cannot honour (`format`, `suffix`, `template`, `raw`, a
`context`) is a 400 that names it, images for a model that cannot see and `think` for a model that
cannot think are 400s too. `options` map to OpenAI's sampling fields; options about how Ollama
loads a model (`num_ctx`, `num_gpu`, ...) have no MLX counterpart and are reported back in the
`X-Mlxui-Ignored-Options` header of the answer.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from mlxui.hub.capabilities import Capabilities
from mlxui.servers.dialects.ollama_wire import OllamaError
from mlxui.servers.keep_alive import KeepAliveError, parse_keep_alive

OPTIONS = {  # Ollama option -> OpenAI / mlx_lm.server field
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p", "seed": "seed",
    "stop": "stop", "num_predict": "max_tokens", "repeat_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
}  # fmt: skip
IMAGE_TYPES = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpeg"), (b"GIF8", "gif"), (b"RIFF", "webp"))
UNSERVED = {
    "suffix": "fill-in-the-middle (`suffix`) is not supported by mlxui's model servers",
    "template": "a per-request `template` is not supported: mlxui uses the model's own chat template",
    "raw": "`raw` prompts are not supported: mlxui always applies the model's chat template",
}


@dataclass
class Request:
    """What the client asked, translated: the OpenAI body plus what mlxui itself handles."""

    body: dict[str, Any]
    stream: bool
    keep_alive: float | None
    empty: bool  # no prompt, no messages: Ollama's way to load (or, keep_alive 0, unload) a model
    ignored: list[str] = field(default_factory=list)


def translate(raw: dict[str, Any], kind: str, asked: str, caps: Capabilities | None) -> Request:
    """`raw` (an Ollama request of `kind` "chat" or "generate") for the model `asked`."""
    for name, why in UNSERVED.items():
        if raw.get(name) not in (None, "", False):
            raise OllamaError(400, f"{why}; leave out `{name}`")
    if raw.get("context"):
        raise OllamaError(400, "`context` (token ids from an earlier answer) is not supported: "
                               "send the conversation to /api/chat instead")  # fmt: skip
    if raw.get("format") not in (None, ""):
        raise OllamaError(400, "`format` (JSON output) is not supported by mlxui's model servers yet; "
                               "leave out `format`")  # fmt: skip
    if kind == "chat":
        messages = raw.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise OllamaError(400, "`messages` must be a list of objects with `role` and `content`")
    else:
        messages = _generate_messages(raw)
    vision = bool(caps and caps.vision)
    body: dict[str, Any] = {"messages": _messages(messages, asked, vision)}
    ignored = _options(raw.get("options"), body)
    _tools(raw.get("tools"), body)  # a model that cannot call tools: request_checks.py
    _think(raw.get("think"), body, asked, caps)
    try:
        keep_alive = None if raw.get("keep_alive") is None else parse_keep_alive(raw["keep_alive"])
    except KeepAliveError as exc:
        raise OllamaError(400, str(exc)) from exc
    stream = raw.get("stream")
    return Request(body, stream is not False, keep_alive, not messages, ignored)


def _generate_messages(raw: dict[str, Any]) -> list[dict[str, Any]]:
    prompt, system, images = raw.get("prompt") or "", raw.get("system"), raw.get("images")
    if not isinstance(prompt, str) or (system is not None and not isinstance(system, str)):
        raise OllamaError(400, "`prompt` and `system` must be text")
    if not prompt and not images:
        return []
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if images:
        user["images"] = images
    return [{"role": "system", "content": system}, user] if system else [user]


def _messages(messages: list[dict[str, Any]], asked: str, vision: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    call_ids: dict[str, str] = {}  # a tool's name -> the id of its latest call
    for number, message in enumerate(messages):
        role, content = message.get("role"), message.get("content") or ""
        if role not in ("system", "user", "assistant", "tool") or not isinstance(content, str):
            raise OllamaError(400, f"messages[{number}] needs a `role` (system, user, assistant or tool) "
                                   "and text `content`")  # fmt: skip
        converted: dict[str, Any] = {"role": role, "content": content}
        if images := message.get("images"):
            if not vision:
                raise OllamaError(400, f"model {asked!r} cannot read images: leave out `images` "
                                       "or use a vision model")  # fmt: skip
            converted["content"] = [{"type": "text", "text": content}, *(_image(i, number) for i in images)]
        if calls := message.get("tool_calls"):
            converted["tool_calls"] = [_call(c, f"call_{number}_{i}", call_ids) for i, c in enumerate(calls)]
        if role == "tool":
            name = message.get("tool_name") or message.get("name") or ""
            converted["tool_call_id"] = call_ids.get(name, f"call_{number}")
            if name:
                converted["name"] = name
        out.append(converted)
    return out


def _image(value: Any, number: int) -> dict[str, Any]:
    """A base64 image (as Ollama sends them) as an OpenAI image part with a data URL."""
    if not isinstance(value, str):
        raise OllamaError(400, f"messages[{number}].images must be base64 text")
    if value.startswith("data:image/"):
        return {"type": "image_url", "image_url": {"url": value}}
    try:
        head = base64.b64decode(value[:32] + "=" * (-len(value[:32]) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OllamaError(
            400, f"messages[{number}].images holds something that is not base64: {exc}"
        ) from exc
    kind = next((name for magic, name in IMAGE_TYPES if head.startswith(magic)), None)
    if kind is None:
        raise OllamaError(400, f"messages[{number}].images: not a PNG, JPEG, GIF or WebP image")
    return {"type": "image_url", "image_url": {"url": f"data:image/{kind};base64,{value}"}}


def _call(call: Any, call_id: str, call_ids: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise OllamaError(400, "a tool call needs `function` with a `name` and `arguments`")
    arguments = function.get("arguments") or {}
    call_ids[function["name"]] = call_id
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": function["name"], "arguments": text}}


def _options(options: Any, body: dict[str, Any]) -> list[str]:
    """Map `options` into `body`; returns the names that have no effect on an MLX server."""
    if options is None:
        return []
    if not isinstance(options, dict):
        raise OllamaError(400, "`options` must be an object")
    ignored = []
    for name, value in options.items():
        if name not in OPTIONS:
            ignored.append(name)
        elif name == "num_predict" and isinstance(value, int) and value < 0:
            continue  # -1: no limit, -2: fill the context; the server's own limit applies
        elif value is not None:
            body[OPTIONS[name]] = value
    return sorted(ignored)


def _tools(tools: Any, body: dict[str, Any]) -> None:
    if not tools:
        return
    if not isinstance(tools, list):
        raise OllamaError(400, "`tools` must be a list of function tools")
    body["tools"] = tools


def _think(think: Any, body: dict[str, Any], asked: str, caps: Capabilities | None) -> None:
    if think is None:
        return
    if think not in (True, False, "low", "medium", "high"):
        raise OllamaError(400, '`think` takes true, false, "low", "medium" or "high"')
    if think and caps is not None and not caps.thinking:
        raise OllamaError(400, f"model {asked!r} does not support thinking: leave out `think`")
    kwargs: dict[str, Any] = {"enable_thinking": bool(think)}
    if isinstance(think, str):
        kwargs["reasoning_effort"] = think
    body["chat_template_kwargs"] = kwargs
