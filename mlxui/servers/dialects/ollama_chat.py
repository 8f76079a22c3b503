"""`/api/chat` and `/api/generate`: one OpenAI chat call through `ModelCalls`, answered as Ollama's
NDJSON lines (streamed by default) or as one object (`stream: false`).

The model server is always asked for a stream, also when the client wants one object: the answer
is assembled here, and a client that leaves mid-answer frees the model at once (docs §5). An
empty prompt (no messages) loads the model, or with `keep_alive: 0` unloads it, as in Ollama.
Another mlxui machine's model (`<peer>/<model>`, servers/peers.py) is asked of that machine
through `ModelCalls.chat`, which forwards it; loading or unloading one is left to that machine.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Receive, Send

from mlxui.servers.dialects.ollama_models import find, mlxui_name
from mlxui.servers.dialects.ollama_request import Request, translate
from mlxui.servers.dialects.ollama_wire import (
    Ndjson,
    OllamaError,
    now_iso,
    ns_since,
    send_json,
    until_disconnect,
)
from mlxui.servers.model_calls import CallError, ModelCalls, ready_server
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import RUNNING_STATES

DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop"}


async def answer(
    calls: ModelCalls, raw: dict[str, Any], kind: str, asked: str, receive: Receive, send: Send
) -> None:
    """Answer one chat (`kind` "chat") or generate request whose `model` is `asked`."""
    wanted = mlxui_name(asked)
    remote = calls.supervisor.find_by_model(wanted) is None and calls.peers and calls.peers.find(wanted)
    server = None if remote else await find(calls.supervisor, asked)
    entry = calls.supervisor.local_entry(server) if server else None
    request = translate(raw, kind, asked, entry.capabilities if entry else None)
    headers = [(b"x-mlxui-ignored-options", ",".join(request.ignored).encode())] if request.ignored else []
    if server is None:  # another machine's model: it checks, loads and keeps it itself
        if request.empty:
            raise OllamaError(400, f"{asked!r} runs on another mlxui machine: load or unload it there")
        if request.keep_alive is not None:
            request.body["keep_alive"] = request.keep_alive
    elif request.empty:
        await send_json(send, 200, await _load_or_unload(calls, server, request, kind, asked), headers)
        return
    else:
        await calls.check(server, asked, request.body)  # before the model loads: refusals are cheap
    lines = _lines(calls, server, request, kind, asked)
    if request.stream:
        out = Ndjson(send, headers)
        await until_disconnect(receive, _stream(lines, out))
    else:
        await until_disconnect(receive, _whole(lines, kind, send, headers))


async def _stream(lines: AsyncIterator[dict[str, Any]], out: Ndjson) -> None:
    try:
        async for line in lines:
            await out.line(line)
    except (CallError, OllamaError) as exc:
        if not out.started:
            raise
        await out.line({"error": exc.message})  # the answer had begun: the error is its last line
    await out.end()


async def _whole(lines: AsyncIterator[dict[str, Any]], kind: str, send: Send, headers: list) -> None:
    text, thinking, last = [], [], {}
    tool_calls: list[dict[str, Any]] = []
    async for line in lines:
        piece = line.get("message", line)
        text.append(piece.get("content" if kind == "chat" else "response") or "")
        thinking.append(piece.get("thinking") or "")
        tool_calls += piece.get("tool_calls") or []
        last = line
    whole: dict[str, Any] = {"content" if kind == "chat" else "response": "".join(text)}
    if any(thinking):
        whole["thinking"] = "".join(thinking)
    if tool_calls:
        whole["tool_calls"] = tool_calls
    if kind == "chat":
        last["message"] = {"role": "assistant", **whole}
    else:
        last |= whole
    await send_json(send, 200, last, headers)


async def _lines(calls: ModelCalls, server: ManagedServer | None, request: Request, kind: str,
                 asked: str) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
    """The answer's Ollama lines: a piece per streamed chunk, the tool calls, the final `done` line.
    `server` None: a peer's model (`asked` names it), which ModelCalls forwards."""
    started = time.monotonic()
    # busy from here on: not stopped to make room while it loads
    with server.in_use() if server else contextlib.nullcontext():
        name = mlxui_name(asked)
        if server is not None:
            ready = await ready_server(calls.supervisor, server)
            name = ready.name
            if request.keep_alive is not None:
                ready.keep_loaded_for(request.keep_alive)
        loaded = time.monotonic()
        first: float | None = None
        finish: str | None = None
        tools: dict[int, dict[str, Any]] = {}
        async with calls.chat(name, {**request.body, "stream": True}, checked=True) as reply:
            async for chunk in reply.chunks():
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    finish = choice.get("finish_reason") or finish
                    for call in delta.get("tool_calls") or []:
                        _add_call(tools, call)
                    text = delta.get("content") or ""
                    thought = delta.get("reasoning") or delta.get("reasoning_content") or ""
                    if text or thought:
                        first = first or time.monotonic()
                        yield _piece(kind, asked, text, thought)
            usage = reply.usage or {}
        if tools:
            yield _piece(kind, asked, "", "", [_ollama_call(tools[i]) for i in sorted(tools)])
        end = time.monotonic()
        yield {
            **_piece(kind, asked, "", ""),
            "done": True,
            "done_reason": DONE_REASONS.get(finish or "stop", finish),
            "total_duration": ns_since(started, end),
            "load_duration": ns_since(started, loaded),
            "prompt_eval_count": usage.get("prompt_tokens") or 0,
            "prompt_eval_duration": ns_since(loaded, first or end),
            "eval_count": usage.get("completion_tokens") or 0,
            "eval_duration": ns_since(first or end, end),
        }


def _piece(kind: str, asked: str, text: str, thought: str, tool_calls: list | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"model": asked, "created_at": now_iso()}
    if kind == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thought:
            message["thinking"] = thought
        if tool_calls:
            message["tool_calls"] = tool_calls
        line["message"] = message
    else:
        line["response"] = text
        if thought:
            line["thinking"] = thought
        if tool_calls:
            line["tool_calls"] = tool_calls
    line["done"] = False
    return line


def _add_call(tools: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
    """OpenAI streams a tool call in pieces (by `index`): the name once, the arguments in parts."""
    known = tools.setdefault(call.get("index", len(tools)), {"name": "", "arguments": ""})
    function = call.get("function") or {}
    known["name"] += function.get("name") or ""
    known["arguments"] += function.get("arguments") or ""


def _ollama_call(call: dict[str, Any]) -> dict[str, Any]:
    try:
        arguments = json.loads(call["arguments"] or "{}")
    except json.JSONDecodeError as exc:
        raise OllamaError(
            502, f"the model called {call['name']!r} with arguments that are not JSON: {exc}"
        ) from exc
    return {"function": {"name": call["name"], "arguments": arguments}}


async def _load_or_unload(calls: ModelCalls, server: ManagedServer, request: Request, kind: str,
                          asked: str) -> dict[str, Any]:  # fmt: skip
    """Ollama's empty request: load the model (and set its keep_alive), or unload it (keep_alive 0)."""
    line = {**_piece(kind, asked, "", ""), "done": True}
    if request.keep_alive == 0:
        if server.state in RUNNING_STATES:
            if server.active_requests:
                server.keep_loaded_for(0)  # stops once the answers in flight are done
            else:
                await calls.supervisor.stop(server.name)
        return {**line, "done_reason": "unload"}
    started = time.monotonic()
    with server.in_use():
        ready = await ready_server(calls.supervisor, server)
        if request.keep_alive is not None:
            ready.keep_loaded_for(request.keep_alive)
    return {
        **line,
        "done_reason": "load",
        "total_duration": ns_since(started),
        "load_duration": ns_since(started),
    }
