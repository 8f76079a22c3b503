"""The gateway's stream relay against upstreams that split SSE events at awkward byte positions.

Real servers write one event per write, so the byte-level edge cases (an event or the usage
chunk cut across TCP reads, chunked framing whose chunks do not line up with events, a server
that dies mid-stream) are played here by a tiny raw TCP upstream, through the real relay.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mlxui.servers.process import ManagedServer
from mlxui.servers.profiles import Profile
from mlxui.servers.relay import relay_stream
from mlxui.servers.upstream import UpstreamExchange


def event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


CONTENT = [event({"choices": [{"index": 0, "delta": {"content": word}}]}) for word in ("Hel", "lo", "!")]
USAGE = event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
DONE = b"data: [DONE]\n\n"


def cut_everywhere(stream: bytes, size: int) -> list[bytes]:
    """The stream in pieces of `size` bytes: event boundaries and the usage key get cut."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


@asynccontextmanager
async def upstream(pieces: list[bytes], *, chunked: bool = False) -> AsyncIterator[str]:
    """A server answering one request with `pieces`, each its own write, 10 ms apart."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        await reader.readexactly(length)
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else b""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + framing + b"\r\n")
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        if chunked:
            writer.write(b"0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def relay(base_url: str, tmp_path: Path, *, strip_usage: bool) -> tuple[list[bytes], ManagedServer]:
    """Run the relay to a recording ASGI `send`; returns the body pieces the client got."""
    server = ManagedServer(Profile(name="t", model="m"), logs_dir=tmp_path, env={}, publish=lambda *_: None)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    exchange = await UpstreamExchange.open(base_url)
    try:
        await asyncio.wait_for(
            relay_stream(
                exchange, "/v1/chat/completions", b"{}", receive, send, server, strip_usage=strip_usage
            ),
            10,
        )
    finally:
        exchange.close()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert sent[-1]["more_body"] is False
    return [m["body"] for m in sent[1:] if m["body"]], server


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
@pytest.mark.parametrize("size", [7, 40, 1000])
async def test_events_cut_anywhere_arrive_whole_and_usage_is_counted(
    tmp_path: Path, size: int, chunked: bool
) -> None:
    stream = b"".join(CONTENT) + USAGE + DONE
    async with upstream(cut_everywhere(stream, size), chunked=chunked) as url:
        pieces, server = await relay(url, tmp_path, strip_usage=True)
    assert b"".join(pieces) == b"".join(CONTENT) + DONE  # usage dropped: the client did not ask
    assert all(piece.endswith(b"\n\n") for piece in pieces)  # never half an event
    metrics = server.metrics
    assert (metrics.requests, metrics.prompt_tokens_total, metrics.completion_tokens_total) == (1, 5, 3)
    assert server.take_stream_tokens() == len(CONTENT)


async def test_usage_is_forwarded_when_asked(tmp_path: Path) -> None:
    stream = b"".join(CONTENT) + USAGE + DONE
    async with upstream(cut_everywhere(stream, 13)) as url:
        pieces, server = await relay(url, tmp_path, strip_usage=False)
    assert b"".join(pieces) == stream
    assert server.metrics.completion_tokens_total == 3


async def test_server_dying_mid_stream_ends_with_an_error_event(tmp_path: Path) -> None:
    async with upstream([CONTENT[0], CONTENT[1][:10]]) as url:  # then the connection closes
        pieces, server = await relay(url, tmp_path, strip_usage=True)
    body = b"".join(pieces)
    assert body.startswith(CONTENT[0])
    last = json.loads(body.rstrip().rsplit(b"\n\n", 1)[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "upstream_died"
    assert "ended the stream early" in server.metrics.last_error
    assert (server.metrics.requests, server.metrics.completion_tokens_total) == (
        1,
        1,
    )  # counted from the events
