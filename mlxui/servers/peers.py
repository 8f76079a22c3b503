"""Other mlxui machines ("peers") whose models this app's gateway lists and forwards to.

`PeerBook` owns the configured peers (name, base URL, that machine's gateway key), persisted as
one JSON list in the setting `peers.list`. While peers exist a refresher asks each one's
`GET /v1/models` every second (short timeouts), so a peer that stops shows down within about a
second and its models answer 503 with the reason. A peer's model is named `<peer>/<its id>` and
is found only when no local model has that name (docs/architecture.md §10).

Loop guard: requests to a peer carry `X-Mlxui-Forwarded: 1`; a gateway never forwards such a
request again and lists no peer models to it, and a peer's own peer models (cards marked `peer`)
are skipped. The key goes only to the configured URL: neither client follows redirects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import field
from typing import Any
from urllib.parse import urlsplit

import httpx
from nicegui import binding

from mlxui.db.settings import get_setting, set_setting

log = logging.getLogger(__name__)

SETTING_KEY = "peers.list"
FORWARDED_HEADER = "x-mlxui-forwarded"
REFRESH_S = 1.0  # each peer's model list is asked this often
CONNECT_TIMEOUT_S = 0.8  # a machine that is off or unreachable is shown down this fast
LIST_TIMEOUT_S = 1.5  # a busy peer may take a while to list its models (it rescans its disk)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
MAX_PEERS = 32


class PeerError(ValueError):
    """A peer that cannot be added or removed; the message says why in one sentence."""


@binding.bindable_dataclass
class Peer:
    """One other mlxui machine and what the refresher last saw of it (the UI binds to `status`)."""

    name: str
    url: str  # scheme://host[:port][/prefix], no trailing slash
    key: str | None = field(default=None, repr=False)  # never sent to pages or the JSON API
    up: bool = False
    reason: str = "not checked yet"  # why it is down; "" while up
    models: list[dict[str, Any]] = field(default_factory=list)  # its own model cards (last seen)
    checked_at: float = 0.0  # time.time() of the last answer or failure
    status: str = "checking…"  # one line for the UI: "up, 3 models" / "down: why"

    def model_name(self, remote_id: str) -> str:
        return f"{self.name}/{remote_id}"

    def remote_ids(self) -> list[str]:
        return [str(card.get("id")) for card in self.models]

    def down_reason(self) -> str:
        return f"The mlxui machine {self.name!r} ({self.url}) is down: {self.reason}"

    def view(self) -> dict[str, Any]:
        """What the JSON API and the CLI show (the key only as `key_set`)."""
        return {
            "name": self.name,
            "url": self.url,
            "key_set": bool(self.key),
            "up": self.up,
            "reason": self.reason,
            "models": [self.model_name(i) for i in self.remote_ids()],
            "checked_at": self.checked_at or None,
        }

    def show(self, up: bool, reason: str, models: list[dict[str, Any]] | None = None) -> None:
        """Record what a check (or a forwarded request) saw; `models` replaces the list when given."""
        if models is not None:
            self.models = models
        self.up, self.reason, self.checked_at = up, reason, time.time()
        count = len(self.models)
        self.status = f"up, {count} model{'s' if count != 1 else ''}" if up else f"down: {reason}"


def normalized_url(url: Any) -> str:
    """`url` checked (http or https, a host, no credentials, query or fragment), without a trailing
    slash or a trailing /v1 (people paste the gateway's URL)."""
    if not isinstance(url, str) or not url.strip():
        raise PeerError("Give the other machine's address, e.g. http://studio.local:8080.")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise PeerError("The address must start with http:// or https://.")
    if not parts.hostname:
        raise PeerError("The address needs a host name, e.g. http://studio.local:8080.")
    if parts.username or parts.password or "@" in parts.netloc:
        raise PeerError("Put no user or password in the address: give the machine's gateway key instead.")
    if parts.query or parts.fragment:
        raise PeerError("The address takes no ?query or #fragment.")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise PeerError(f"The address has a bad port: {exc}.") from exc
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def default_name(url: str) -> str:
    host = (urlsplit(url).hostname or "peer").lower()
    first = host if _is_ip(host) else host.split(".")[0]
    name = re.sub(r"[^a-z0-9._-]", "-", first).strip("-._") or "peer"
    return name[:40]


def _is_ip(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+", host)) or ":" in host


def _check_key(key: Any) -> str | None:
    if key is None or (isinstance(key, str) and not key.strip()):
        return None
    if not isinstance(key, str) or len(key.strip()) > 256 or any(c.isspace() for c in key.strip()):
        raise PeerError("The key is the other machine's gateway key: up to 256 characters, no spaces.")
    return key.strip()


class PeerBook:
    """The configured peers, their states, and the refresher that keeps those states current."""

    def __init__(self, *, refresh_s: float = REFRESH_S, timeout_s: float = LIST_TIMEOUT_S) -> None:
        self.peers: dict[str, Peer] = {}
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self._listeners: list[Callable[[], Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None

    # --- membership ---------------------------------------------------------------------------
    async def load(self) -> None:
        stored = await get_setting(SETTING_KEY, [])
        for item in stored if isinstance(stored, list) else []:
            try:
                peer = Peer(
                    name=str(item["name"]), url=normalized_url(item["url"]), key=_check_key(item.get("key"))
                )
            except (PeerError, KeyError, TypeError) as exc:
                log.warning("ignoring a stored peer %r: %s", item, exc)
                continue
            self.peers[peer.name] = peer

    async def add(self, url: str, key: str | None = None, name: str | None = None) -> Peer:
        """Check, store and start watching a peer; PeerError (nothing saved) when it cannot be."""
        clean_url = normalized_url(url)
        clean_key = _check_key(key)
        chosen = (name or "").strip().lower() or default_name(clean_url)
        if not NAME_RE.match(chosen):
            raise PeerError(
                "A name is 1 to 40 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit."
            )
        if name is None and chosen in self.peers:
            port = urlsplit(clean_url).port
            chosen = f"{chosen}-{port}" if port else chosen
        if chosen in self.peers:
            raise PeerError(f"There is already a machine named {chosen!r}: give another name.")
        if any(p.url == clean_url for p in self.peers.values()):
            raise PeerError(f"{clean_url} is already in the list.")
        if len(self.peers) >= MAX_PEERS:
            raise PeerError(f"At most {MAX_PEERS} machines.")
        peer = Peer(name=chosen, url=clean_url, key=clean_key)
        self.peers[chosen] = peer
        await self._save()
        self._changed()
        self._ensure_refresher()
        self._wake.set()
        return peer

    async def remove(self, name: str) -> None:
        if name not in self.peers:
            raise PeerError(f"No machine named {name!r}; known: {', '.join(sorted(self.peers)) or 'none'}.")
        del self.peers[name]
        await self._save()
        self._changed()

    def on_change(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """`callback()` after a peer is added or removed; returns the unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def views(self) -> list[dict[str, Any]]:
        return [self.peers[name].view() for name in sorted(self.peers)]

    # --- names ----------------------------------------------------------------------------------
    def find(self, model: str) -> tuple[Peer, str] | None:
        """(peer, the peer's own id) for `<peer>/<id>`, whether or not that peer is up now."""
        name, sep, remote = model.partition("/")
        peer = self.peers.get(name)
        if not sep or not remote or peer is None:
            return None
        return peer, remote

    def capable(self, model: str | None, capability: str) -> bool:
        """Whether the peer's card for `model` says it has `capability` ("vision", "thinking"...)."""
        hit = self.find(model) if model else None
        card = next((c for c in hit[0].models if c.get("id") == hit[1]), None) if hit else None
        caps = card.get("capabilities") if card else None
        return bool(isinstance(caps, dict) and caps.get(capability))

    def model_names(self) -> list[str]:
        return [p.model_name(i) for p in self.peers.values() for i in p.remote_ids()]

    def model_cards(self, local_names: set[str]) -> list[dict[str, Any]]:
        """The peers' models as this gateway lists them: named `<peer>/<id>`, marked with the peer
        and its state; a name a local model already has is left out (the local one answers)."""
        cards = []
        for peer in sorted(self.peers.values(), key=lambda p: p.name):
            for card in peer.models:
                name = peer.model_name(str(card.get("id")))
                if name in local_names:
                    continue
                cards.append(
                    {
                        **card, "id": name, "owned_by": peer.name, "peer": peer.name, "peer_url": peer.url,
                        "peer_model": card.get("id"), "source": "peer",
                        "state": card.get("state", "ready") if peer.up else "down",
                        "peer_state": "up" if peer.up else "down", "peer_reason": peer.reason,
                    }
                )  # fmt: skip
        return cards

    # --- the refresher --------------------------------------------------------------------------
    async def start(self) -> None:
        await self.load()
        self._ensure_refresher()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def mark_down(self, peer: Peer, reason: str) -> None:
        """A forwarded request could not reach `peer`: show it down now, not at the next check."""
        peer.show(False, reason)

    async def refresh(self) -> None:
        """Ask every peer for its models once (concurrently)."""
        await asyncio.gather(*(self._check(p) for p in list(self.peers.values())))

    def _ensure_refresher(self) -> None:
        if self.peers and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="peers refresher")

    async def _run(self) -> None:
        while self.peers:
            started = time.monotonic()
            await self.refresh()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), max(0.05, self.refresh_s - (time.monotonic() - started))
                )

    async def _check(self, peer: Peer) -> None:
        if self._client is None:
            timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, CONNECT_TIMEOUT_S))
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        headers = {FORWARDED_HEADER: "1", "accept": "application/json"}
        if peer.key:
            headers["authorization"] = f"Bearer {peer.key}"
        try:
            answer = await self._client.get(f"{peer.url}/v1/models", headers=headers)
        except httpx.TimeoutException:
            peer.show(False, f"no answer within {self.timeout_s:g} s")
            return
        except httpx.HTTPError as exc:
            peer.show(False, _transport_reason(exc))
            return
        if answer.status_code == 401:
            peer.show(False, "it refused the key (HTTP 401): set that machine's gateway key here", [])
            return
        if answer.status_code != 200:
            peer.show(False, f"GET /v1/models answered HTTP {answer.status_code}", [])
            return
        try:
            data = answer.json().get("data")
        except (ValueError, AttributeError):
            data = None
        if not isinstance(data, list):
            peer.show(False, "it does not answer like an mlxui gateway (no model list)", [])
            return
        own = [c for c in data if isinstance(c, dict) and isinstance(c.get("id"), str) and not c.get("peer")]
        peer.show(True, "", own)

    async def _save(self) -> None:
        stored = [{"name": p.name, "url": p.url, "key": p.key} for p in self.peers.values()]
        await set_setting(SETTING_KEY, stored)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()


def _transport_reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({text})"
    return text
