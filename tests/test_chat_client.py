"""The streaming chat client against real mlx_lm / mlx_vlm servers running scripted tiny models."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import aclosing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest
from PIL import Image

from mlxui.chat.client import (
    ChatError,
    ContentDelta,
    ContentToReasoning,
    Done,
    ReasoningDelta,
    Usage,
    stream_chat,
)
from mlxui.chat.thinking import ReplyText
from tests.harness.mlxserver import RunningServer, free_port
from tests.harness.models import ENDLESS_CYCLE, PLAIN_REPLY, THINK_CONTENT, THINK_REASONING

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]


async def collect(stream) -> tuple[ReplyText, list[Any]]:
    reply, events = ReplyText(), []
    async with stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, ReasoningDelta | ContentDelta | ContentToReasoning):
                reply.add(event)
    return reply, events


async def test_plain_model_streams_its_exact_reply_with_usage_and_metrics(
    plain_server: RunningServer,
) -> None:
    stream = stream_chat(HI, model=plain_server.model, base_url=plain_server.base_url)
    reply, events = await collect(stream)
    assert (reply.content, reply.reasoning) == (PLAIN_REPLY, "")
    assert sum(isinstance(e, ContentDelta) for e in events) > 1  # streamed in pieces, not at the end
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[-1].completion_tokens == 9  # 8 reply tokens + end of sequence
    assert usage[-1].prompt_tokens and usage[-1].prompt_tokens > 0
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "stop"
    m = done.metrics
    assert m.model == plain_server.model
    assert m.ttft_s is not None and 0 < m.ttft_s < 10
    assert m.tokens_per_s is not None and m.tokens_per_s > 0
    assert (m.prompt_tokens, m.completion_tokens) == (usage[-1].prompt_tokens, 9)
    assert m.total_s is not None and m.total_s >= m.ttft_s
    assert m.thinking_s is None
    assert stream.metrics() == m  # the same numbers after the stream ended
    stored = m.to_dict()
    assert stored["completion_tokens"] == 9 and "thinking_s" not in stored  # None fields left out


async def test_settings_reach_the_server(plain_server: RunningServer) -> None:
    # max_tokens cuts the reply; thinking=False travels as chat_template_kwargs without upsetting it.
    stream = stream_chat(
        HI, model=plain_server.model, base_url=plain_server.base_url + "/v1",
        max_tokens=3, temperature=0.0, thinking=False,
    )  # fmt: skip
    reply, events = await collect(stream)
    assert reply.content == "Hello there!"
    assert events[-1].finish_reason == "length"
    assert events[-1].metrics.completion_tokens == 3


async def test_reasoning_field_is_reasoning(think_tokens_server: RunningServer) -> None:
    stream = stream_chat(HI, model=think_tokens_server.model, base_url=think_tokens_server.base_url)
    reply, events = await collect(stream)
    assert (reply.reasoning, reply.content) == (THINK_REASONING, THINK_CONTENT)
    kinds = [type(e) for e in events if isinstance(e, ReasoningDelta | ContentDelta)]
    assert kinds.index(ContentDelta) > 0 and ReasoningDelta not in kinds[kinds.index(ContentDelta) :]
    metrics = events[-1].metrics
    assert metrics.thinking_s is not None and 0 <= metrics.thinking_s <= metrics.total_s


async def test_inline_think_tags_are_split_off(think_text_server: RunningServer) -> None:
    stream = stream_chat(HI, model=think_text_server.model, base_url=think_text_server.base_url)
    reply, _ = await collect(stream)
    assert (reply.reasoning, reply.content) == ("Let me see.", "Four.")


async def test_stop_frees_the_server(endless_server: RunningServer) -> None:
    got = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        stream = stream_chat(
            HI, model=endless_server.model, base_url=endless_server.base_url, max_tokens=100_000
        )
        async for event in stream:
            if isinstance(event, ContentDelta):
                received.append(event.text)
                if len("".join(received)) > 200:
                    got.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got.wait(), 30)
    server = psutil.Process(endless_server.pid)
    server.cpu_percent()
    await asyncio.sleep(0.3)
    busy = server.cpu_percent()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "".join(received).startswith(ENDLESS_CYCLE * 3)

    started = time.monotonic()
    reply, _ = await collect(
        stream_chat(HI, model=endless_server.model, base_url=endless_server.base_url, max_tokens=3)
    )
    assert time.monotonic() - started < 2.0
    assert reply.content == ENDLESS_CYCLE  # 3 tokens: "la", " la", " lo "
    # The server stopped generating the cancelled reply: its CPU falls from busy to idle.
    server.cpu_percent()
    await asyncio.sleep(0.5)
    idle = server.cpu_percent()
    assert busy > 40 and idle < busy / 3, (busy, idle)


async def test_breaking_out_of_the_loop_closes_the_stream(endless_server: RunningServer) -> None:
    stream = stream_chat(HI, model=endless_server.model, base_url=endless_server.base_url, max_tokens=100_000)
    async with aclosing(stream):
        async for event in stream:
            if isinstance(event, ContentDelta):
                break
    started = time.monotonic()
    await collect(stream_chat(HI, model=endless_server.model, base_url=endless_server.base_url, max_tokens=2))
    assert time.monotonic() - started < 2.0


async def test_dead_port_says_the_server_is_not_running() -> None:
    port = free_port()
    with pytest.raises(ChatError) as caught:
        await collect(stream_chat(HI, model="x", base_url=f"http://127.0.0.1:{port}"))
    assert "not running" in caught.value.message and f"127.0.0.1:{port}" in caught.value.message
    assert caught.value.retryable


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def test_vision_server_answers_a_message_with_an_image(vlm_server: RunningServer) -> None:
    url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    with_image = [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}},
    ]}]  # fmt: skip
    text_only = [{"role": "user", "content": "what is this"}]
    _, events = await collect(
        stream_chat(
            with_image, model=vlm_server.model, base_url=vlm_server.base_url, max_tokens=4, thinking=False
        )
    )
    _, plain_events = await collect(
        stream_chat(text_only, model=vlm_server.model, base_url=vlm_server.base_url, max_tokens=4)
    )
    done, plain_done = events[-1], plain_events[-1]
    assert isinstance(done, Done) and done.metrics.completion_tokens
    # The image became prompt tokens: the server saw it.
    assert done.metrics.prompt_tokens > plain_done.metrics.prompt_tokens


# ----- errors from a server that answers badly ----------------------------------------------------
class _Replies(BaseHTTPRequestHandler):
    status = 500
    body: dict[str, Any] = {}
    delay = 0.0

    def do_POST(self) -> None:  # noqa: N802 -- the http.server API
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(self.delay)
        data = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except BrokenPipeError:
            return  # the client gave up waiting (the timeout test): nothing to answer

    def log_message(self, *args: object) -> None:
        return None  # keep test output clean


@pytest.fixture
def bad_server() -> Iterator[tuple[str, type[_Replies]]]:
    handler = type("Handler", (_Replies,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def gateway_error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "expected", "retryable"),
    [
        (404, gateway_error("No profile named 'nope'; GET /v1/models lists them.", "model_not_found"),
         "The server has no model 'nope': No profile named 'nope'", False),
        (503, gateway_error("Model 'big' is still loading; try again shortly.", "model_loading"),
         "The model is still loading; try again in a moment.", True),
        (503, gateway_error("Model 'big' is failed: out of memory", "model_failed"),
         "The model is not available: Model 'big' is failed: out of memory", True),
        (500, {"error": "boom"}, "The server failed (HTTP 500): boom", True),
        (401, gateway_error("Missing or wrong API key", "invalid_api_key"), "The server refused the API key.", False),
        (422, {"detail": [{"msg": "Field required", "loc": ["body", "model"]}]}, "The server rejected the request:", False),
    ],
)  # fmt: skip
async def test_http_errors_become_sentences(bad_server, status, body, expected, retryable) -> None:
    url, handler = bad_server
    handler.status, handler.body = status, body
    with pytest.raises(ChatError) as caught:
        await collect(stream_chat(HI, model="nope", base_url=url))
    assert caught.value.message.startswith(expected)
    assert caught.value.status == status and caught.value.retryable is retryable


async def test_a_silent_server_times_out(bad_server) -> None:
    url, handler = bad_server
    handler.delay = 3.0
    started = time.monotonic()
    with pytest.raises(ChatError) as caught:
        await collect(stream_chat(HI, model="x", base_url=url, timeout_s=0.5))
    assert "did not answer within" in caught.value.message
    assert time.monotonic() - started < 2.5
