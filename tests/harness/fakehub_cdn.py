"""The fake Hub's content host: where the Hub redirects large (LFS) files, as the real Hub sends
them to its CDN with a signed, expiring URL. Its requests land in the Hub's request log (path
`/cdn/...`), so `bytes_served` counts them; throttle, drop and stall knobs apply as on the Hub.

`FakeHub.redirect_lfs = True` turns the redirect on; `FakeHub.url_ttl` (seconds) makes signed URLs
expire: an expired one answers 403, as S3 and CloudFront do.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.harness.fakehub_http import Handler, HubError, RequestRecord, Server, halt, serve

_SECRET = b"fake-cdn-signing-key"


class FakeCdn:
    def __init__(self, serve_file: Callable[[Handler, RequestRecord, str, str, str], None],
                 record: Callable[[RequestRecord], None]) -> None:  # fmt: skip
        self._serve_file, self._record = serve_file, record
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.signed = 0  # URLs handed out

    def start(self) -> None:
        self._server, self._thread = serve(self.port, self._handle, "fakecdn")
        self.port = self._server.server_address[1]

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        halt(server, thread)

    def sign(self, repo_id: str, commit: str, filename: str, ttl: float | None) -> str:
        """A URL for the file that stops working `ttl` seconds from now (never, for None)."""
        expires = "0" if ttl is None else f"{time.time() + ttl:.3f}"
        path = f"/cdn/{repo_id}/{commit}/{quote(filename)}"
        self.signed += 1
        return f"http://127.0.0.1:{self.port}{path}?expires={expires}&sig={_sig(path, expires)}"

    def _handle(self, h: Handler) -> None:
        split = urlsplit(h.path)
        rec = RequestRecord(
            h.command, split.path, split.query, h.headers.get("Range"), h.headers.get("Authorization")
        )
        self._record(rec)
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        if len(parts) >= 5:
            rec.repo_id, rec.filename = f"{parts[1]}/{parts[2]}", "/".join(parts[4:])
        try:
            params = parse_qs(split.query)
            expires, sig = params.get("expires", [""])[0], params.get("sig", [""])[0]
            if len(parts) < 5 or parts[0] != "cdn" or not hmac.compare_digest(sig, _sig(split.path, expires)):
                raise HubError(403, "SignatureDoesNotMatch")
            if expires != "0" and float(expires) < time.time():
                raise HubError(403, "Request has expired")
            if rec.authorization:  # a content host never needs the Hub token: it must not get one
                raise HubError(400, "Only one auth mechanism allowed")
            self._serve_file(h, rec, rec.repo_id or "", parts[3], rec.filename or "")
        except HubError as err:
            h.send_json(rec, err.status, {"error": err.message}, err.headers)


def _sig(path: str, expires: str) -> str:
    return hmac.new(_SECRET, f"{path}?{expires}".encode(), hashlib.sha256).hexdigest()[:32]
