"""Streaming chat completions through the official `openai` SDK, with timing and friendly errors.

    async with stream_chat(messages, model="my-profile", base_url=config.base_url) as stream:
        async for event in stream:      # ReasoningDelta | ContentDelta | ContentToReasoning | Usage | Done
            ...
    stream.metrics()                    # ReplyMetrics so far: also valid after Stop or an error

Stop = cancel the task that iterates: the HTTP response is closed on the way out, and both MLX
servers stop generating when their client goes away (docs/architecture.md §6). Every failure is a `ChatError`
whose message a user understands. Inline thinking tags are split off by `ThinkingParser`; the
`reasoning` / `reasoning_content` delta fields pass straight through as reasoning.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from mlxui.chat.thinking import Segment, ThinkingParser

DEFAULT_TIMEOUT_S = 300.0  # between bytes; servers send keepalives during a long prefill
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ReasoningDelta:
    text: str
    kind: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True)
class ContentDelta:
    text: str
    kind: Literal["content"] = "content"


@dataclass(frozen=True)
class ContentToReasoning:
    """All content so far (exactly `text`) was reasoning: a lone closing tag arrived."""

    text: str
    kind: Literal["reclassify"] = "reclassify"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True)
class Done:
    finish_reason: str | None  # "stop", "length" (hit max_tokens), ...
    metrics: ReplyMetrics


ChatEvent = ReasoningDelta | ContentDelta | ContentToReasoning | Usage | Done


@dataclass(frozen=True)
class ReplyMetrics:
    """What the UI shows under a reply; `to_dict()` is what the store keeps in `Message.metrics`."""

    model: str
    ttft_s: float | None = None  # request sent -> first reasoning or content text
    tokens_per_s: float | None = None  # completion tokens / (end - first token)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_s: float | None = None  # request sent -> end of the stream (or now, while streaming)
    thinking_s: float | None = None  # first reasoning -> first content (or the end)
    finish_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


class ChatError(Exception):
    """A failed chat request; `message` is one sentence for the user, `status` the HTTP status
    when the server answered, `retryable` whether trying again can help."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable


def stream_chat(
    messages: list[dict[str, Any]],
    *,
    model: str,
    base_url: str,
    api_key: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    thinking: bool | None = None,
    starts_in_thinking: bool | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    extra_body: dict[str, Any] | None = None,
) -> ChatStream:
    """Start streaming a chat completion; iterate the result for events (see module doc).

    `base_url` is the server root (`http://127.0.0.1:8765`) or its `/v1`. `model` is what the
    server calls it: a profile name for mlxui's gateway. `thinking` asks the chat template for
    `enable_thinking` (None: the model's default).
    """
    body: dict[str, Any] = dict(extra_body or {})
    if thinking is not None:
        # mlx_lm.server reads chat_template_kwargs; mlx_vlm.server reads a top-level enable_thinking.
        body["chat_template_kwargs"] = {**body.get("chat_template_kwargs", {}), "enable_thinking": thinking}
        body["enable_thinking"] = thinking
    request: dict[str, Any] = {"model": model, "messages": messages, "extra_body": body or None}
    if temperature is not None:
        request["temperature"] = temperature
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    return ChatStream(request, base_url, api_key, timeout_s, starts_in_thinking)


class ChatStream:
    """One streamed reply: an async iterator of `ChatEvent`s and an async context manager."""

    def __init__(
        self,
        request: dict[str, Any],
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        starts_in_thinking: bool | None,
    ) -> None:
        self.model: str = request["model"]
        self.base_url = _v1_url(base_url)
        self._request = request
        self._api_key = api_key or "none"  # the SDK insists on one; our servers ignore it unless set
        self._timeout_s = timeout_s
        self._parser = ThinkingParser(starts_in_thinking=starts_in_thinking)
        self._started = time.monotonic()
        self._first_token: float | None = None
        self._first_reasoning: float | None = None
        self._first_content: float | None = None
        self._ended: float | None = None
        self._usage = Usage(None, None)
        self._text_chunks = 0  # chunks that carried text: one per token from mlx servers
        self._finish_reason: str | None = None
        self._events = self._run()

    def metrics(self) -> ReplyMetrics:
        """Timing and token counts so far. The server's counts arrive with the last chunk; a
        stream that ends before it (Stop) counts the chunks that carried text instead."""
        end = self._ended if self._ended is not None else time.monotonic()
        ttft = tokens_per_s = thinking = None
        completion = self._usage.completion_tokens
        if completion is None and self._text_chunks:
            completion = self._text_chunks
        if self._first_token is not None:
            ttft = round(self._first_token - self._started, 4)
            generating = end - self._first_token
            if completion and generating > 0:
                tokens_per_s = round(completion / generating, 2)
        if self._first_reasoning is not None:
            thought_until = self._first_content if self._first_content is not None else end
            thinking = round(max(thought_until - self._first_reasoning, 0.0), 4)
        return ReplyMetrics(
            model=self.model,
            ttft_s=ttft,
            tokens_per_s=tokens_per_s,
            prompt_tokens=self._usage.prompt_tokens,
            completion_tokens=completion,
            total_s=round(end - self._started, 4),
            thinking_s=thinking,
            finish_reason=self._finish_reason,
        )

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Close the HTTP stream (the server stops generating). Safe to call twice."""
        await self._events.aclose()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncIterator[ChatEvent]:
        timeout = openai.Timeout(self._timeout_s, connect=CONNECT_TIMEOUT_S)
        client = AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0, timeout=timeout)
        self._started = time.monotonic()
        try:
            try:
                stream = await client.chat.completions.create(
                    **self._request, stream=True, stream_options={"include_usage": True}
                )
            except openai.OpenAIError as exc:
                raise _chat_error(exc, self.base_url, self.model, self._timeout_s) from exc
            try:
                async for chunk in stream:
                    for event in self._on_chunk(chunk):
                        yield event
            except openai.OpenAIError as exc:
                raise _chat_error(exc, self.base_url, self.model, self._timeout_s, mid_reply=True) from exc
            finally:
                await stream.close()  # on Stop (cancel) too: closing is what frees the server
            for event in self._segments(self._parser.finish()):
                yield event
            self._ended = time.monotonic()
            yield Done(self._finish_reason, self.metrics())
        finally:
            self._ended = self._ended or time.monotonic()
            await client.close()

    def _on_chunk(self, chunk: Any) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        if chunk.choices:
            choice = chunk.choices[0]
            delta = choice.delta
            extra = (delta.model_extra or {}) if delta is not None else {}
            reasoning = extra.get("reasoning") or extra.get("reasoning_content")
            if (isinstance(reasoning, str) and reasoning) or (delta is not None and delta.content):
                self._text_chunks += 1
            if isinstance(reasoning, str) and reasoning:
                events += self._segments(self._parser.feed_reasoning(reasoning))
            if delta is not None and delta.content:
                events += self._segments(self._parser.feed(delta.content))
            if choice.finish_reason:
                self._finish_reason = choice.finish_reason
        usage = chunk.usage
        if usage is not None:
            self._usage = Usage(usage.prompt_tokens, usage.completion_tokens)
            events.append(self._usage)
        return events

    def _segments(self, segments: list[Segment]) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        now = time.monotonic()
        for segment in segments:
            if self._first_token is None:
                self._first_token = now
            if segment.kind == "reasoning":
                self._first_reasoning = self._first_reasoning or now
                events.append(ReasoningDelta(segment.text))
            elif segment.kind == "content":
                self._first_content = self._first_content or now
                events.append(ContentDelta(segment.text))
            else:  # what looked like the answer was the thought: it started with the first token
                self._first_reasoning, self._first_content = self._first_token, None
                events.append(ContentToReasoning(segment.text))
        return events


def _v1_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _chat_error(
    exc: openai.OpenAIError, base_url: str, model: str, timeout_s: float, *, mid_reply: bool = False
) -> ChatError:
    where = urlsplit(base_url).netloc or base_url
    if isinstance(exc, openai.APITimeoutError):
        return ChatError(f"The server at {where} did not answer within {timeout_s:.0f} s.")
    if isinstance(exc, openai.APIConnectionError):
        if mid_reply:
            return ChatError(f"The connection to the server at {where} was lost during the reply.")
        return ChatError(f"Cannot reach the server at {where}: the server is not running.")
    if isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, _detail(exc.body) or exc.message
        if status == 401:
            return ChatError("The server refused the API key.", status=status, retryable=False)
        if status == 404:
            return ChatError(f"The server has no model {model!r}: {detail}", status=status, retryable=False)
        if status == 413:
            return ChatError(
                f"The message is too large for the server: {detail}", status=status, retryable=False
            )
        if status in (400, 422):
            return ChatError(f"The server rejected the request: {detail}", status=status, retryable=False)
        if status == 503:
            code = _error_code(exc.body)
            if code == "model_loading":
                return ChatError("The model is still loading; try again in a moment.", status=status)
            return ChatError(f"The model is not available: {detail}", status=status)
        return ChatError(f"The server failed (HTTP {status}): {detail}", status=status)
    return ChatError(f"The chat request failed: {getattr(exc, 'message', None) or exc}")


def _detail(body: object) -> str:
    """The human part of an error body: OpenAI style, FastAPI style or plain text."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300] if body else ""


def _error_code(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        code = error.get("code") if isinstance(error, dict) else None
        return str(code) if code else None
    return None
