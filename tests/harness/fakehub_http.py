"""HTTP plumbing of the fake Hub: a threaded server that can cut its connections, a handler that
sends JSON or a streamed body, the request log record and small parsers. No Hub logic here."""

from __future__ import annotations

import base64
import binascii
import json
import re
import select
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

BAD_CREDENTIALS = "Invalid credentials in Authorization header"


@dataclass
class RequestRecord:
    """One request as the fake Hub saw it; `bytes_sent` grows while a file body streams."""

    method: str
    path: str
    query: str
    range: str | None
    authorization: str | None
    repo_id: str | None = None
    filename: str | None = None  # set for /resolve requests
    status: int = 0
    bytes_sent: int = 0

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)


class HubError(Exception):
    """An error answer: status, `X-Error-Code` (what huggingface_hub maps to its exceptions) and
    `X-Error-Message`, with a JSON `{"error": message}` body."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})
        if code:
            self.headers["X-Error-Code"] = code
        self.headers["X-Error-Message"] = message


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, address: tuple[str, int], dispatch: Callable[[Handler], None]) -> None:
        self.dispatch = dispatch
        self.halt = threading.Event()  # set on stop: wakes handlers sleeping in a throttle or stall
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up mid-answer: normal for cancelled downloads
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        """Stop accepting, cut every open connection and join every handler thread."""
        self.halt.set()
        self.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # already closed by its handler: nothing left to cut
        self.server_close()


def serve(port: int, dispatch: Callable[[Handler], None], name: str) -> tuple[Server, threading.Thread]:
    """A Server on 127.0.0.1:`port` (0: any) answering in its own thread; stop it with `halt`."""
    server = Server(("127.0.0.1", port), dispatch)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return server, thread


def halt(server: Server | None, thread: threading.Thread | None) -> bool:
    """Stop `server`, cut its connections and join its threads; False if it was not running."""
    if server is None or thread is None:
        return False
    server.close_all()
    thread.join(timeout=10)
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled connections expect
    timeout = 60  # an idle keep-alive socket is closed after this
    server: Server

    def do_GET(self) -> None:
        self.server.dispatch(self)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are recorded in FakeHub.requests instead of printed

    def client_gone(self) -> bool:
        """Has the client closed its end (killed, or gave up)? The kernel still accepts one more
        write into such a socket, so a body streamed on without asking would count bytes as sent
        that nobody can ever read."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:  # reset by the peer: gone as well
            return True

    def send_json(self, rec: RequestRecord, status: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_head(rec, status, {"Content-Type": "application/json", **(headers or {})}, len(data))
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_head(self, rec: RequestRecord, status: int, headers: dict, length: int) -> None:
        rec.status = status
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()


def bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[7:].strip() or None
    return None


def truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_cursor(params: dict[str, list[str]]) -> int:
    if not params.get("cursor"):
        return 0
    cursor = params["cursor"][0]
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])
    except (binascii.Error, KeyError, TypeError, ValueError) as err:
        raise HubError(400, f"Invalid cursor {cursor!r}") from err


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """First range of a `bytes=` header as inclusive (start, end); None if unsatisfiable."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", value.split(",")[0].strip())
    if m is None or m.group(1) == m.group(2) == "":
        return None
    if m.group(1) == "":  # suffix range: the last N bytes
        start, end = max(0, size - int(m.group(2))), size - 1
    else:
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    return (start, end) if start <= end and start < size else None


def override_error(status: int) -> HubError:
    """The answer for `FakeHub.status_overrides`: 404 looks like an unknown repo."""
    if status == 404:
        return HubError(404, "Repository not found", "RepoNotFound")
    return HubError(status, {401: "Unauthorized", 403: "Forbidden"}.get(status, "Internal Error"))
