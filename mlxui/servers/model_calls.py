"""Calling a local model in OpenAI's chat dialect from inside mlxui: the one road the other API
dialects (Anthropic Messages, OpenAI Responses, the Ollama API) take to a model server.

`ModelCalls.chat(model, body)` finds the server by any of its names, starts it if needed (the same
shared, memory-admitted start as the OpenAI gateway), marks it busy for the whole call, sends the
OpenAI chat request and gives back either the whole answer or its stream of chunks as dicts, with
usage counted into the server's metrics. Every refusal is a `CallError` with an HTTP status, a
code and a sentence, which each dialect turns into its own error shape.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import AsyncIterator
from typing import Any

from mlxui.servers.call_error import CallError
from mlxui.servers.dialects.token_count import TokenCounter
from mlxui.servers.peer_calls import peer_chat
from mlxui.servers.peers import PeerBook
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.request_checks import RequestChecks
from mlxui.servers.scheduler import AdmissionRefused, AdmissionTimeout
from mlxui.servers.state import ServerState, UnknownProfile
from mlxui.servers.supervisor import Supervisor
from mlxui.servers.upstream import UpstreamError, UpstreamExchange

RETRY_LOADING_S = 5
RETRY_FAILED_S = 30
MAX_ANSWER_BYTES = 64 * 1024 * 1024
CHAT_PATH = "/v1/chat/completions"
__all__ = ["CallError", "ChatAnswer", "ModelCalls", "ready_server", "unavailable", "unknown_model"]


async def ready_server(supervisor: Supervisor, server: ManagedServer) -> ManagedServer:
    """`server` once it answers (started on demand, one start shared by all callers), or CallError."""
    if server.state == ServerState.READY and server.base_url:
        return server
    try:
        server = await supervisor.ensure_ready(server.name)
    except UnknownProfile as exc:  # deleted while we waited
        raise unknown_model(supervisor, server.name) from exc
    except TimeoutError as exc:
        raise CallError(503, "model_loading", f"Model {server.name!r} is still loading; try again shortly.",
                        RETRY_LOADING_S) from exc  # fmt: skip
    except AdmissionRefused as exc:  # it can never fit as things are: retrying will not help
        raise CallError(503, "insufficient_memory", str(exc)) from exc
    except AdmissionTimeout as exc:
        raise CallError(503, "memory_busy", str(exc), RETRY_LOADING_S) from exc
    except ServerError as exc:
        if server.crash_guard.tripped:  # down until a user starts it: no Retry-After
            raise CallError(503, "model_crashed", str(exc)) from exc
        raise unavailable(server, "model_failed", RETRY_FAILED_S) from exc
    if server.state != ServerState.READY or not server.base_url:  # stopped again meanwhile
        raise unavailable(server, "model_unavailable", RETRY_LOADING_S)
    return server


def unavailable(server: ManagedServer, code: str, retry_after: int) -> CallError:
    reason = f": {server.error}" if server.error else ""
    return CallError(503, code, f"Model {server.name!r} is {server.state}{reason}", retry_after)


def unknown_model(supervisor: Supervisor, model: str) -> CallError:
    close = difflib.get_close_matches(model, supervisor.model_names(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return CallError(
        404, "model_not_found", f"No model or profile named {model!r}.{hint} GET /v1/models lists them."
    )


class ModelCalls:
    def __init__(self, supervisor: Supervisor, peers: PeerBook | None = None) -> None:
        self.supervisor = supervisor
        self.peers = peers  # other mlxui machines: `<peer>/<id>` names their models (peers.py)
        self.counter = TokenCounter()  # tokenizers cached for the checks and count_tokens
        self.checks = RequestChecks(self.counter)

    async def check(self, server: ManagedServer, asked: str, body: dict[str, Any]) -> None:
        """The shared refusals (request_checks.py) for `body` sent to `server` as `asked`."""
        await self.checks.check(body, asked, server.kind, self.supervisor.local_entry(server))

    async def server(self, model: str) -> ManagedServer:
        found = await self.supervisor.lookup(model)
        if found is None:
            raise unknown_model(self.supervisor, model)
        return found

    @contextlib.asynccontextmanager
    async def chat(
        self, model: str, body: dict[str, Any], *, checked: bool = False
    ) -> AsyncIterator[ChatAnswer]:
        """An OpenAI chat request to `model` (any of its names), refused first when it cannot be
        served as asked (unless the caller already `checked` it). Yields a `ChatAnswer`: for
        `body["stream"]` iterate its `chunks()`, else read `whole`. Leaving the block early closes
        the connection, which stops the generation. A peer's model (`<peer>/<id>`, when no local
        model has that name) is asked of that machine, which does its own checks."""
        hit = None
        if self.peers is not None and self.supervisor.find_by_model(model) is None:
            hit = self.peers.find(model)
        if hit is not None:
            async with peer_chat(self.peers, *hit, body) as answer:  # type: ignore[arg-type]
                yield answer
            return
        server = await self.server(model)
        if not checked:
            await self.check(server, model, body)
        with server.in_use():  # busy for the whole call: never stopped to make room mid-answer
            server = await ready_server(self.supervisor, server)
            request = {**body, "model": server.upstream_model}
            if request.get("stream"):
                request["stream_options"] = {**(request.get("stream_options") or {}), "include_usage": True}
            server.touch()
            try:
                upstream = await UpstreamExchange.open(server.base_url or "")
            except UpstreamError as exc:
                server.record_error(str(exc))
                raise CallError(502, "upstream_unavailable", str(exc)) from exc
            try:
                await upstream.send("POST", CHAT_PATH, json.dumps(request).encode())
                answer = ChatAnswer(server, upstream)
                if upstream.status != 200:
                    raise CallError(upstream.status if upstream.status < 500 else 502, f"upstream_{upstream.status}",
                                    await answer.error_text())  # fmt: skip
                if not request.get("stream"):
                    answer.whole = await answer.read_whole()
                yield answer
            except UpstreamError as exc:
                server.record_error(str(exc))
                raise CallError(502, "upstream_error", str(exc)) from exc
            finally:
                upstream.close()
                server.touch()


class ChatAnswer:
    """The model server's answer: `whole` (a non-streamed reply) or `chunks()` (a stream)."""

    def __init__(self, server: ManagedServer, upstream: UpstreamExchange) -> None:
        self.server = server
        self.upstream = upstream
        self.whole: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None

    async def read_whole(self) -> dict[str, Any]:
        data = await self.upstream.read_all(MAX_ANSWER_BYTES)
        try:
            whole = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UpstreamError(f"the model server's answer is not JSON: {exc}") from exc
        self._count(whole.get("usage"))
        return whole

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """Each streamed chunk as a dict (the usage-only last chunk too, with `choices == []`)."""
        pending = b""
        finished = False
        streamed = 0
        while data := await self.upstream.read():
            pending += data
            *events, pending = pending.replace(b"\r\n", b"\n").split(b"\n\n")
            for event in events:
                payload = _data_of(event)
                if payload is None:
                    continue  # a keep-alive comment during prompt processing
                if payload == b"[DONE]":
                    finished = True
                    continue
                chunk = json.loads(payload)
                if chunk.get("choices"):
                    streamed += 1
                    self.server.record_stream_tokens(1)
                if isinstance(chunk.get("usage"), dict):
                    self._count(chunk["usage"])
                yield chunk
        if not finished:
            if self.usage is None:
                self.server.record_usage(0, streamed)
            raise UpstreamError("the model server ended the stream early (did it crash?)")

    async def error_text(self) -> str:
        data = await self.upstream.read_all(MAX_ANSWER_BYTES)
        with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            error = json.loads(data).get("error") or json.loads(data).get("detail")
            if isinstance(error, dict):
                error = error.get("message")
            if error:
                return f"model server: {error}"
        return f"model server: {data.decode('utf-8', 'replace')[:2000] or f'HTTP {self.upstream.status}'}"

    def _count(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage = usage
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self.server.record_usage(
                prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0
            )


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None
