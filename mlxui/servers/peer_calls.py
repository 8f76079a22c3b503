"""Forwarding a request for a peer's model (`<peer>/<id>`, servers/peers.py) to that machine.

The hop is the same raw relay as to a local server (docs/architecture.md §5): the peer's gateway
gets the request with its own model id, the peer's key and `X-Mlxui-Forwarded: 1` (so it never
forwards it again); streamed chunks pass through as the socket delivers them, a plain answer is
assembled from a stream, and a client that leaves closes the connection, which makes the peer
stop its model. A peer that is down, or that cannot be reached now, answers 503 with the reason.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from mlxui.servers.call_error import CallError
from mlxui.servers.peers import FORWARDED_HEADER, Peer, PeerBook
from mlxui.servers.relay import Receive, Send, relay_stream, send_call_error
from mlxui.servers.upstream import UpstreamError, UpstreamExchange

CONNECT_TIMEOUT_S = 2.0
RETRY_DOWN_S = 2


class PeerTally:
    """Stands in for a `ManagedServer` in the relay: counts what passed, keeps the last error."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.tokens = 0
        self.error: str | None = None

    def record_stream_tokens(self, count: int) -> None:
        self.tokens += count

    def record_usage(self, prompt: int, completion: int) -> None:
        self.tokens = max(self.tokens, completion)

    def record_error(self, message: str) -> None:
        self.error = message


def is_forwarded(headers: list[tuple[bytes, bytes]]) -> bool:
    """The request came from another mlxui's gateway: it is never forwarded again."""
    return any(name.lower() == FORWARDED_HEADER.encode() for name, _ in headers)


def down_error(peer: Peer) -> CallError:
    return CallError(503, "peer_unavailable", peer.down_reason(), RETRY_DOWN_S)


async def open_peer(book: PeerBook, peer: Peer) -> UpstreamExchange:
    """A connection to `peer`'s gateway carrying its key and the loop guard, or CallError 503
    (and the peer is shown down at once)."""
    if not peer.up:
        raise down_error(peer)
    headers = {FORWARDED_HEADER: "1"}
    if peer.key:
        headers["Authorization"] = f"Bearer {peer.key}"
    try:
        return await UpstreamExchange.open(peer.url, CONNECT_TIMEOUT_S, headers=headers)
    except UpstreamError as exc:
        book.mark_down(peer, f"cannot connect ({exc.__cause__ or exc})")
        raise down_error(peer) from exc


def peer_path(peer: Peer, path: str) -> str:
    return urlsplit(peer.url).path + path


async def forward(
    book: PeerBook,
    peer: Peer,
    remote: str,
    asked: str,
    body: dict[str, Any],
    path: str,
    receive: Receive,
    send: Send,
) -> None:
    """Answer the gateway's client with `peer`'s answer to `body` (an OpenAI completion request)."""
    from mlxui.servers.assemble import relay_assembled  # assemble imports the relay, as we do

    try:
        upstream = await open_peer(book, peer)
    except CallError as exc:
        await send_call_error(send, exc)
        return
    tally = PeerTally(peer)
    body["model"] = remote
    try:
        if body.get("stream"):
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            wants_usage = bool(options.get("include_usage"))
            body["stream_options"] = {**options, "include_usage": True}
            await relay_stream(
                upstream, peer_path(peer, path), json.dumps(body).encode(), receive, send, tally,  # type: ignore[arg-type]
                strip_usage=not wants_usage, renames=renames(remote, asked),
            )  # fmt: skip
        else:
            await relay_assembled(upstream, peer_path(peer, path), body, receive, send, tally, asked)  # type: ignore[arg-type]
    finally:
        upstream.close()


@contextlib.asynccontextmanager
async def peer_chat(book: PeerBook, peer: Peer, remote: str, body: dict[str, Any]) -> AsyncIterator[Any]:
    """`ModelCalls.chat` for a peer's model: the other dialects (Anthropic, Responses) reach it
    as the OpenAI chat they send to local models; yields a `ChatAnswer`."""
    from mlxui.servers.model_calls import CHAT_PATH, ChatAnswer

    upstream = await open_peer(book, peer)
    request = {**body, "model": remote}
    if request.get("stream"):
        request["stream_options"] = {**(request.get("stream_options") or {}), "include_usage": True}
    try:
        await upstream.send("POST", peer_path(peer, CHAT_PATH), json.dumps(request).encode())
        answer = ChatAnswer(PeerTally(peer), upstream)  # type: ignore[arg-type]
        if upstream.status != 200:
            text = (await answer.error_text()).replace("model server:", f"mlxui machine {peer.name!r}:", 1)
            raise CallError(
                upstream.status if upstream.status < 500 else 502, f"peer_{upstream.status}", text
            )
        if not request.get("stream"):
            answer.whole = await answer.read_whole()
        yield answer
    except UpstreamError as exc:
        raise CallError(502, "peer_error", f"mlxui machine {peer.name!r}: {exc}") from exc
    finally:
        upstream.close()


def renames(remote: str, asked: str) -> tuple[tuple[bytes, bytes], ...]:
    """The peer's replies name its own id; the client gets the name it asked for."""
    old, new = json.dumps(remote).encode(), json.dumps(asked).encode()
    return ((b'"model": ' + old, b'"model": ' + new), (b'"model":' + old, b'"model":' + new))
