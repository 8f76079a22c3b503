"""A minimal HTTP/1.1 client for the gateway's hop to a local model server.

httpx costs too much per streamed chunk on a small machine (docs/architecture.md §5: 0.83 of the direct rate), so
the gateway talks to `mlx_lm.server` / `mlx_vlm.server` over a raw asyncio connection: write one
request, parse only the response head, then hand the body on in whatever pieces the socket gives.
Both framings our servers use are handled: `mlx_lm.server` answers HTTP/1.0 with close-delimited
streams (Content-Length otherwise); `mlx_vlm.server` (uvicorn) answers chunked.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
READ_SIZE = 64 * 1024


class UpstreamError(Exception):
    """The model server could not be reached, or broke the HTTP exchange; the message says how."""


@dataclass
class UpstreamExchange:
    """One exchange on its own connection: `open()`, `send()` (reads the head), `read()` the body.

    The object exists before the head arrives so that a client disconnect can `close()` it while
    the gateway still waits for a slow server.
    """

    reader: asyncio.StreamReader = field(repr=False)
    writer: asyncio.StreamWriter = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 80
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    _length: int | None = field(default=None, repr=False)  # bytes left when Content-Length framed
    _chunked: bool = field(default=False, repr=False)
    _chunk_left: int = field(default=0, repr=False)  # bytes left in the current chunk
    _done: bool = field(default=False, repr=False)
    extra_head: str = field(default="", repr=False)  # more header lines (a peer's key), CRLF-ended

    @classmethod
    async def open(
        cls, base_url: str, connect_timeout: float = 10.0, *, headers: dict[str, str] | None = None
    ) -> UpstreamExchange:
        """Connect to `base_url`'s host (TLS for https: another mlxui machine, servers/peers.py);
        `headers` go with the request."""
        parts = urlsplit(base_url)
        tls = parts.scheme == "https"
        host, port = parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, limit=MAX_HEAD_BYTES, ssl=ssl.create_default_context() if tls else None
                ),
                connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to the model server at {host}:{port}: {exc}") from exc
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        return cls(reader, writer, host, port, extra_head=extra)

    async def send(
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ) -> None:
        """Write the request (`Connection: close`) and read the response head.

        No timeout on the head: a model server may work long before its first byte, and a client
        that gives up closes this exchange through `close()`.
        """
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nAccept: */*\r\n{self.extra_head}Connection: close\r\n\r\n"
        ).encode("latin-1")
        try:
            self.writer.write(head + body)
            await self.writer.drain()
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise UpstreamError("model server closed the connection without answering") from exc
        except asyncio.LimitOverrunError as exc:
            raise UpstreamError("model server sent an oversized response head") from exc
        except OSError as exc:
            raise UpstreamError(f"model server connection broke: {exc}") from exc
        self._parse_head(raw)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/json")

    async def read(self) -> bytes:
        """The next piece of the body as soon as any is available; b"" once the body is complete.

        Raises UpstreamError when the connection ends before the framing says the body did.
        Close-delimited bodies cannot be told apart from a dying server here; the caller checks
        the payload (an SSE stream ends with `data: [DONE]`).
        """
        if self._done:
            return b""
        if self._chunked:
            return await self._read_chunked()
        if self._length is None:  # close-delimited
            data = await self._read_some(READ_SIZE)
            if not data:
                self._done = True
            return data
        if self._length == 0:
            self._done = True
            return b""
        data = await self._read_some(min(self._length, READ_SIZE))
        if not data:
            raise UpstreamError(f"model server closed the connection with {self._length} bytes unsent")
        self._length -= len(data)
        return data

    def body_reader(self) -> Callable[[], Awaitable[bytes]]:
        """`read`, or for a close-delimited body the socket's own read: one call layer less per
        streamed chunk. Its OSError (a reset) is the caller's to catch."""
        if self._chunked or self._length is not None or self._done:
            return self.read
        return functools.partial(self.reader.read, READ_SIZE)

    async def read_all(self, limit: int) -> bytes:
        """The whole body (at most `limit` bytes)."""
        parts: list[bytes] = []
        size = 0
        while data := await self.read():
            size += len(data)
            if size > limit:
                raise UpstreamError(f"model server answered more than {limit} bytes")
            parts.append(data)
        return b"".join(parts)

    def close(self) -> None:
        """Drop the connection; a server in the middle of a stream sees a broken pipe and stops."""
        self._done = True
        self.writer.close()

    async def _read_some(self, n: int) -> bytes:
        try:
            return await self.reader.read(n)
        except OSError as exc:  # reset by a dying server
            raise UpstreamError(f"model server connection broke: {exc}") from exc

    async def _read_chunked(self) -> bytes:
        try:
            if self._chunk_left == 0:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    await self._skip_trailers()
                    self._done = True
                    return b""
                self._chunk_left = size
            data = await self.reader.read(min(self._chunk_left, READ_SIZE))
            if not data:
                raise UpstreamError("model server closed the connection inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                await self.reader.readexactly(2)  # the CRLF after the chunk's data
            return data
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError) as exc:
            raise UpstreamError(f"model server sent a broken chunked body: {exc}") from exc

    async def _skip_trailers(self) -> None:
        while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
            pass

    def _parse_head(self, raw: bytes) -> None:
        lines = raw.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/") or not status[1].isdigit():
            raise UpstreamError(f"model server sent a malformed status line: {lines[0][:100]!r}")
        self.status = int(status[1])
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                self.headers[name.strip().lower()] = value.strip()
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in self.headers:
            try:
                self._length = int(self.headers["content-length"])
            except ValueError as exc:
                raise UpstreamError("model server sent a malformed Content-Length") from exc
