"""A web page on another origin: a second port on this machine, serving the test's pages and
recording every request it receives (what a hostile page, or a browser-based client, would be)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PageSite:
    """`pages` maps a path to its HTML; `requests` lists every path asked for. Any name that
    resolves to this machine reaches it (`origin("friend.test")` with a host-resolver rule)."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                site.requests.append(self.path)
                body = site.pages.get(self.path.split("?")[0], "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return  # quiet: tests read `requests`

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def origin(self, name: str = "localhost") -> str:
        return f"http://{name}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
