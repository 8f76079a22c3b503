"""A fake Hugging Face Hub on 127.0.0.1 that the real huggingface_hub client talks to.

Serves what huggingface_hub 2.4 asks for (docs/architecture.md §6): /api/models (search, sort,
cursor pages through a `Link: <...>; rel="next"` header), /api/models/{id}[/revision/{rev}],
/api/models/{id}/tree/{rev}[/{path}], HEAD/GET /{id}/resolve/{rev}/{path} (ETag, X-Repo-Commit,
X-Linked-*, Range -> 206) and /api/whoami-v2. Fault knobs (throttle, drop, stall, status
overrides, offline) act on live connections, so download code can be tested against them.

Auth as on the Hub: a Bearer token not in `valid_tokens` gets 401 on every request; private
repos answer 401 RepoNotFound without a token; gated repos serve metadata to anyone but files
only with a token (else 401 GatedRepo).

Mind the client's own retries when choosing a status: `list_models` and `http_get` retry
408/429/5xx with backoff (about 23 s for a 500); `model_info` and the HEAD calls do not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tests.harness.fakehub_cdn import FakeCdn
from tests.harness.fakehub_http import (
    BAD_CREDENTIALS,
    Handler,
    HubError,
    RequestRecord,
    Server,
    bearer,
    decode_cursor,
    encode_cursor,
    halt,
    override_error,
    parse_range,
    serve,
    truthy,
)
from tests.harness.fakehub_repos import (
    SORT_KEYS,
    HubRepo,
    RepoFileEntry,
    check_repo_id,
    commit_sha,
    iso_time,
    listing_filter,
    model_json,
    resolve_rev,
    scan_folder,
    sort_repos,
    tree_json,
)

__all__ = ["VALID_TOKEN", "FakeHub", "HubRepo", "RequestRecord"]

VALID_TOKEN = "hf_test_valid"
_CHUNK = 64 * 1024


class FakeHub:
    """A Hub server in a background thread. Use as `with FakeHub() as hub:` or start()/stop()."""

    def __init__(self) -> None:
        self._repos: dict[str, HubRepo] = {}
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._offline = False
        self.requests: list[RequestRecord] = []
        self.cdn = FakeCdn(self._serve_cdn, self._record)
        self.reset()

    def __enter__(self) -> FakeHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeHub is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        if self._server is not None:
            return
        self._server, self._thread = serve(self._port, self._handle, "fakehub")
        self._port = self._server.server_address[1]  # kept, so going online again reuses it
        self.cdn.start()

    def stop(self) -> None:
        """Stop serving, cut open connections and join every handler thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if halt(server, thread):
            self.cdn.stop()

    @property
    def offline(self) -> bool:
        return self._offline

    @offline.setter
    def offline(self, value: bool) -> None:
        # Offline closes the listening socket (and open connections): clients get "connection
        # refused" at once, which huggingface_hub treats as no network (httpx ConnectError).
        if value and not self._offline:
            self.stop()
        elif not value and self._offline:
            self.start()
        self._offline = value

    def add_repo(
        self,
        repo_id: str,
        folder: Path,
        *,
        gated: bool = False,
        private: bool = False,
        downloads: int = 0,
        likes: int = 0,
        tags: list[str] | None = None,
        pipeline_tag: str | None = "text-generation",
        library_name: str | None = "mlx",
        last_modified: str | None = None,
        created_at: str | None = None,
        trending_score: int = 0,
    ) -> str:
        """Serve the files under `folder` (read when served: keep it unchanged) as `repo_id`;
        return the commit sha of `main`. Adding the same id again with other files makes a new
        commit on `main`; earlier commits stay reachable by sha."""
        check_repo_id(repo_id)
        files = scan_folder(Path(folder))
        sha = commit_sha(repo_id, files)
        with self._lock:
            old = self._repos.get(repo_id)
            index = len(self._repos) if old is None else list(self._repos).index(repo_id)
            repo = HubRepo(
                repo_id=repo_id, gated=gated, private=private, downloads=downloads, likes=likes,
                tags=list(tags or []), pipeline_tag=pipeline_tag, library_name=library_name,
                last_modified=last_modified or iso_time(index, days=1 if old is None else 2),
                created_at=created_at or iso_time(index), trending_score=trending_score,
                commits=dict(old.commits) if old else {}, head=sha,
            )  # fmt: skip
            repo.commits[sha] = files
            self._repos[repo_id] = repo
        return sha

    def add_listing_only(self, repo_id: str, **metadata: Any) -> None:
        """A search result without files (one empty commit); takes add_repo's metadata keywords."""
        check_repo_id(repo_id)
        sha = commit_sha(repo_id, {})
        with self._lock:
            index = len(self._repos)
            meta = {"last_modified": iso_time(index, days=1), "created_at": iso_time(index)} | metadata
            meta["last_modified"] = meta["last_modified"] or iso_time(index, days=1)
            meta["created_at"] = meta["created_at"] or iso_time(index)
            meta["tags"] = list(meta.get("tags") or [])
            self._repos[repo_id] = HubRepo(repo_id=repo_id, commits={sha: {}}, head=sha, **meta)

    def remove_repo(self, repo_id: str) -> None:
        with self._lock:
            self._repos.pop(repo_id, None)

    def clear_repos(self) -> None:
        with self._lock:
            self._repos.clear()

    def repo(self, repo_id: str) -> HubRepo | None:
        with self._lock:
            return self._repos.get(repo_id)

    def reset(self) -> None:
        """Clear every fault knob and the request log and go online; repositories stay."""
        self.throttle_bps: int | None = None  # file body bytes per second
        self.drop_after_bytes: int | None = None  # close after this many body bytes of a file
        self.drop_times = 1  # how many file responses get dropped
        self.stall_after_bytes: int | None = None  # go silent after this many body bytes
        self.stall_seconds = 30.0  # then close the socket
        self.status_overrides: dict[str, int] = {}  # repo_id (or "*": every request) -> status
        self.page_size = 100  # /api/models page size (the Hub's is 1000); `limit` lowers it
        self.tree_page_size = 1000
        self.valid_tokens: dict[str, str] = {VALID_TOKEN: "tester"}  # token -> user name
        self.offline = False
        self.redirect_lfs = False  # LFS files: 302 to the content host (fakehub_cdn.py), as the Hub does
        self.url_ttl: float | None = None  # how long a content-host URL works; None: for ever
        self.ignore_range = False  # answer every file GET with 200 and the whole file, as some servers do
        # Called with each file GET's record before its body is sent, in the handler thread: lets a
        # test look at the client's side (the partial file) at the moment a transfer (re)starts.
        self.on_file_get: Callable[[RequestRecord], None] | None = None
        with self._lock:
            self.requests.clear()

    def bytes_served(self, repo_id: str | None = None) -> int:
        """File body bytes sent by /resolve GETs (all repos, or one), partial bodies included."""
        with self._lock:
            records = list(self.requests)
        return sum(r.bytes_sent for r in records if r.filename and repo_id in (None, r.repo_id))

    # ----- request handling (handler threads) ---------------------------------------------------
    def _handle(self, h: Handler) -> None:
        split = urlsplit(h.path)
        path = split.path
        rec = RequestRecord(
            h.command, path, split.query, h.headers.get("Range"), h.headers.get("Authorization")
        )
        with self._lock:
            self.requests.append(rec)
        token = bearer(rec.authorization)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        try:
            if token is not None and token not in self.valid_tokens:
                raise HubError(401, BAD_CREDENTIALS)
            if "*" in self.status_overrides:
                raise override_error(self.status_overrides["*"])
            if path == "/api/whoami-v2":
                return self._whoami(h, rec, token)
            if path == "/api/models":
                return self._list_models(h, rec, token)
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo, rest = self._lookup(rec, f"{parts[2]}/{parts[3]}", token), parts[4:]
                if not rest or (rest[0] == "revision" and len(rest) == 2):
                    return self._model_info(h, rec, repo, rest[1] if rest else "main")
                if rest[0] == "tree" and len(rest) >= 2:
                    return self._tree(h, rec, repo, rest[1], "/".join(rest[2:]))
            if len(parts) >= 5 and parts[2] == "resolve":
                rec.filename = "/".join(parts[4:])
                repo = self._lookup(rec, f"{parts[0]}/{parts[1]}", token)
                return self._resolve(h, rec, repo, parts[3], token)
            raise HubError(404, f"Not found: {path}")
        except HubError as err:
            h.send_json(rec, err.status, {"error": err.message}, err.headers)

    def _lookup(self, rec: RequestRecord, repo_id: str, token: str | None) -> HubRepo:
        rec.repo_id = repo_id
        if repo_id in self.status_overrides:
            raise override_error(self.status_overrides[repo_id])
        repo = self.repo(repo_id)
        if repo is None or (repo.private and token is None):
            # anonymous callers get 401 for both, so a private repo's existence does not leak
            raise HubError(401 if token is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def _whoami(self, h: Handler, rec: RequestRecord, token: str | None) -> None:
        if token is None:
            raise HubError(401, BAD_CREDENTIALS)
        name = self.valid_tokens[token]
        body = {
            "type": "user", "id": "6543210fedcba9876543210f", "name": name, "fullname": name.title(),
            "email": f"{name}@example.invalid", "emailVerified": True, "isPro": False, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "mlxui-tests", "role": "read"}},
        }  # fmt: skip
        h.send_json(rec, 200, body)

    def _list_models(self, h: Handler, rec: RequestRecord, token: str | None) -> None:
        params = rec.params
        sort = params.get("sort", [None])[0]
        if sort is not None and sort not in SORT_KEYS:
            raise HubError(400, f"Invalid sort parameter: {sort}")
        limit = params.get("limit", ["0"])[0]
        if not limit.isdigit():
            raise HubError(400, f"Invalid limit: {limit}")
        offset = decode_cursor(params)
        with self._lock:
            repos = [
                r for r in self._repos.values() if (not r.private or token) and listing_filter(r, params)
            ]
        repos = sort_repos(repos, sort, params.get("direction", [None])[0])
        size = min(int(limit), self.page_size) if int(limit) > 0 else self.page_size
        full = truthy(params.get("full"))
        expand = params.get("expand", []) + params.get("expand[]", [])
        extras = tuple(k for k in ("config", "cardData") if truthy(params.get(k)))
        body = [
            model_json(r, r.head, listing=True, full=full, expand=expand, extras=extras)
            for r in repos[offset : offset + size]
        ]
        h.send_json(rec, 200, body, self._next_link(h, rec, offset + size, len(repos)))

    def _next_link(self, h: Handler, rec: RequestRecord, offset: int, total: int) -> dict[str, str]:
        """The `Link` header the client follows for the next page (none on the last page)."""
        if offset >= total:
            return {}
        pairs = [(k, v) for k, v in parse_qsl(rec.query, keep_blank_values=True) if k != "cursor"]
        query = urlencode([*pairs, ("cursor", encode_cursor(offset))])
        host = h.headers.get("Host") or f"127.0.0.1:{self._port}"
        return {"Link": f'<http://{host}{rec.path}?{query}>; rel="next"'}

    def _model_info(self, h: Handler, rec: RequestRecord, repo: HubRepo, rev: str) -> None:
        sha = resolve_rev(repo, rev)
        params = rec.params
        expand = params.get("expand", []) + params.get("expand[]", [])
        h.send_json(
            rec, 200, model_json(repo, sha, listing=False, blobs=truthy(params.get("blobs")), expand=expand)
        )

    def _tree(self, h: Handler, rec: RequestRecord, repo: HubRepo, rev: str, sub: str) -> None:
        sha = resolve_rev(repo, rev)
        params = rec.params
        recursive, expand = truthy(params.get("recursive")), truthy(params.get("expand"))
        entries = tree_json(
            repo.commits[sha], sha, sub, recursive=recursive, expand=expand, date=repo.last_modified
        )
        if entries is None:
            raise HubError(404, f"{sub} does not exist on {rev}", "EntryNotFound", {"X-Repo-Commit": sha})
        offset, size = decode_cursor(params), self.tree_page_size
        h.send_json(
            rec, 200, entries[offset : offset + size], self._next_link(h, rec, offset + size, len(entries))
        )

    def _resolve(self, h: Handler, rec: RequestRecord, repo: HubRepo, rev: str, token: str | None) -> None:
        sha = resolve_rev(repo, rev)
        entry = repo.commits[sha].get(rec.filename or "")
        if entry is None:
            # X-Repo-Commit lets the client cache the file's absence (.no_exist)
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        if repo.gated and token is None:
            msg = f"Access to model {repo.repo_id} is restricted. You must be authenticated to access it."
            raise HubError(401, msg, "GatedRepo", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.etag}"'}
        if entry.is_lfs:
            headers |= {"X-Linked-Etag": f'"{entry.etag}"', "X-Linked-Size": str(entry.size)}
        if entry.is_lfs and self.redirect_lfs:
            url = self.cdn.sign(repo.repo_id, sha, rec.filename or "", self.url_ttl)
            h.send_head(rec, 302, headers | {"Location": url}, 0)
            return
        self._send_file(h, rec, entry, headers)

    def _serve_cdn(self, h: Handler, rec: RequestRecord, repo_id: str, commit: str, filename: str) -> None:
        repo = self.repo(repo_id)
        entry = repo.commits.get(commit, {}).get(filename) if repo is not None else None
        if entry is None:
            raise HubError(404, "NoSuchKey")
        self._send_file(h, rec, entry, {"ETag": f'"{entry.etag}"'})

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def _send_file(self, h: Handler, rec: RequestRecord, entry: RepoFileEntry, headers: dict) -> None:
        headers = headers | {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        start, end, status = 0, entry.size - 1, 200
        if rec.range and h.command == "GET" and not self.ignore_range:
            parsed = parse_range(rec.range, entry.size)
            if parsed is None:
                raise HubError(416, "Range Not Satisfiable", None, {"Content-Range": f"bytes */{entry.size}"})
            (start, end), status = parsed, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        if h.command == "GET" and self.on_file_get is not None:
            self.on_file_get(rec)
        h.send_head(rec, status, headers, end + 1 - start)
        if h.command == "GET":
            try:
                self._stream(h, rec, entry, start, end + 1)
            except ConnectionError:
                h.close_connection = True  # the client went away mid-body; nothing left to answer

    def _stream(self, h: Handler, rec: RequestRecord, entry: RepoFileEntry, start: int, stop: int) -> None:
        """Send file bytes [start, stop), reading the throttle/drop/stall knobs on every chunk."""
        halt = h.server.halt
        began = time.monotonic()
        with entry.source.open("rb") as fh:
            fh.seek(start)
            while start + rec.bytes_sent < stop:
                bps = self.throttle_bps
                n = min(max(1024, min(_CHUNK, bps // 20)) if bps else _CHUNK, stop - start - rec.bytes_sent)
                n, fault = self._cut_point(rec.bytes_sent, n)
                if h.client_gone():  # bytes_sent counts only what the client could still read
                    h.close_connection = True
                    return
                h.wfile.write(fh.read(n))
                rec.bytes_sent += n
                if fault == "stall":
                    halt.wait(self.stall_seconds)  # the socket stays open and silent
                # sleep until the average rate is back at the limit
                delay = rec.bytes_sent / bps - (time.monotonic() - began) if bps and not fault else 0
                if fault or (delay > 0 and halt.wait(delay)):
                    h.close_connection = True  # the server then sends FIN: the client sees a short body
                    return

    def _cut_point(self, sent: int, n: int) -> tuple[int, str | None]:
        """How many of the next `n` bytes to send, and the fault ("drop"/"stall") that follows."""
        drop, stall = self.drop_after_bytes, self.stall_after_bytes
        if drop is not None and sent + n > drop:
            with self._lock:
                if self.drop_times > 0:
                    self.drop_times -= 1
                    return max(0, drop - sent), "drop"
        if stall is not None and sent + n > stall:
            return max(0, stall - sent), "stall"
        return n, None
