"""Searching the Hub for models, one page at a time.

`await search_models(...)` asks the Hub for the first page and returns `SearchResults`;
`await results.more()` follows the Hub's own `Link: rel="next"` cursor for the next page, so the
UI loads more only when the user scrolls. Requests go through huggingface_hub's session (its auth
headers, user agent, offline switch and error classes) but with a single attempt and a timeout:
`list_models` retries a refused connection for ~23 s, which would freeze an offline search.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx2  # huggingface_hub's HTTP client
from huggingface_hub import constants
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from mlxui import __version__
from mlxui.hub.errors import HUB_ERRORS, BadQuery, HubError, hub_error
from mlxui.hub.repo_id import NAME_PART

DEFAULT_AUTHOR = "mlx-community"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000  # the Hub's own cap per page
MAX_QUERY_LENGTH = 200
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0

# UI names -> the Hub's sort keys (all sort descending: most downloads, newest first ...)
SORTS = {
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trendingScore",
    "trendingScore": "trendingScore",
    "updated": "lastModified",
    "lastModified": "lastModified",
    "last_modified": "lastModified",
    "created": "createdAt",
    "createdAt": "createdAt",
}
# Without `expand` (or `full`) the Hub leaves out lastModified, gated and sha; asking for exactly
# these keeps the pages small.
_EXPAND = (
    "author", "downloads", "likes", "lastModified", "createdAt", "tags", "pipeline_tag",
    "library_name", "gated", "private", "sha", "trendingScore",
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ----- results ------------------------------------------------------------------------------------
@dataclass
class HubModel:
    """One search result, as a model card shows it before its files are read."""

    repo_id: str
    author: str
    downloads: int = 0
    likes: int = 0
    last_modified: datetime | None = None
    created_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None
    gated: bool = False
    private: bool = False
    is_mlx: bool = False
    sha: str | None = None  # the commit of main: capabilities are cached per sha
    trending_score: int = 0

    @property
    def name(self) -> str:
        return self.repo_id.split("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("last_modified", "created_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


@dataclass
class SearchResults:
    """The results loaded so far; `await more()` appends the next page while `has_more`."""

    query: str
    author: str | None
    sort: str
    mlx_only: bool
    endpoint: str
    token: str | None = field(default=None, repr=False)
    models: list[HubModel] = field(default_factory=list)
    next_url: str | None = None
    pages_loaded: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def has_more(self) -> bool:
        return self.next_url is not None

    async def more(self) -> list[HubModel]:
        """Load the next page; returns only its new models ([] when there is none).
        Two overlapping calls (a fast scroll) load one page, not the same page twice."""
        async with self._lock:
            if self.next_url is None:
                return []
            url = self.next_url
            items, next_url = await asyncio.to_thread(_get_page, url, None, self.token, self.endpoint)
            return self._add_page(items, next_url)

    def _add_page(self, items: list[dict[str, Any]], next_url: str | None) -> list[HubModel]:
        seen = {m.repo_id for m in self.models}
        new = [m for m in map(parse_model, items) if m is not None and m.repo_id not in seen]
        self.models.extend(new)
        self.next_url = next_url if _same_origin(next_url, self.endpoint) else None
        self.pages_loaded += 1
        return new


async def search_models(
    query: str = "",
    *,
    author: str | None = DEFAULT_AUTHOR,
    sort: str = "downloads",
    mlx_only: bool = False,
    limit: int = DEFAULT_PAGE_SIZE,
    pipeline_tag: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> SearchResults:
    """The first page (`limit` models) of a Hub search; `await results.more()` for the next ones.

    `author=None` searches every author; `mlx_only` keeps models tagged for the MLX library. Raises
    BadQuery for unusable arguments, HubUnavailable when the Hub cannot be reached (quickly: one
    attempt), HubError otherwise. `token=None` uses HF_TOKEN or the saved login.
    """
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    params = search_params(
        query, author=author, sort=sort, mlx_only=mlx_only, limit=limit, pipeline_tag=pipeline_tag
    )
    results = SearchResults(
        query=str(params.get("search", "")),
        author=author,
        sort=sort,
        mlx_only=mlx_only,
        endpoint=endpoint,
        token=token,
    )
    items, next_url = await asyncio.to_thread(_get_page, f"{endpoint}/api/models", params, token, endpoint)
    results._add_page(items, next_url)
    return results


def search_params(
    query: str,
    *,
    author: str | None,
    sort: str,
    mlx_only: bool,
    limit: int,
    pipeline_tag: str | None = None,
) -> dict[str, Any]:
    """The /api/models query for these arguments; raises BadQuery for unusable ones."""
    query = (query or "").strip()
    if len(query) > MAX_QUERY_LENGTH:
        raise BadQuery(f"The search text is too long (at most {MAX_QUERY_LENGTH} characters).")
    if _CONTROL.search(query):
        raise BadQuery("The search text contains control characters.")
    if sort not in SORTS:
        raise BadQuery(f"Unknown sort {sort!r}: use downloads, likes, updated or trending.")
    if not 1 <= int(limit) <= MAX_PAGE_SIZE:
        raise BadQuery(f"The page size must be between 1 and {MAX_PAGE_SIZE}, not {limit}.")
    if author is not None and not NAME_PART.fullmatch(author):
        raise BadQuery(f"{author[:100]!r} is not a Hub user or organisation name.")
    params: dict[str, Any] = {"sort": SORTS[sort], "limit": int(limit), "expand": list(_EXPAND)}
    if query:
        params["search"] = query
    if author:
        params["author"] = author
    if mlx_only:
        params["filter"] = "mlx"  # the library tag the Hub gives MLX models
    if pipeline_tag:
        params["pipeline_tag"] = pipeline_tag
    return params


def parse_model(item: Any) -> HubModel | None:
    """A HubModel from one /api/models entry; None for an entry without a usable id."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or "/" not in item["id"]:
        return None
    repo_id = item["id"]
    tags = [t for t in item.get("tags") or [] if isinstance(t, str)]
    library = item.get("library_name") if isinstance(item.get("library_name"), str) else None
    pipeline = item.get("pipeline_tag") if isinstance(item.get("pipeline_tag"), str) else None
    return HubModel(
        repo_id=repo_id,
        author=str(item.get("author") or repo_id.split("/")[0]),
        downloads=_int(item.get("downloads")),
        likes=_int(item.get("likes")),
        last_modified=_time(item.get("lastModified")),
        created_at=_time(item.get("createdAt")),
        tags=tags,
        pipeline_tag=pipeline,
        library_name=library,
        gated=bool(item.get("gated")),  # False, or "auto"/"manual"
        private=bool(item.get("private")),
        is_mlx=library == "mlx" or "mlx" in tags,
        sha=item.get("sha") if isinstance(item.get("sha"), str) else None,
        trending_score=_int(item.get("trendingScore")),
    )


def _get_page(
    url: str, params: dict[str, Any] | None, token: str | None, endpoint: str
) -> tuple[list[Any], str | None]:
    """One GET of a result page (blocking): its items and the next page's URL."""
    headers = build_hf_headers(token=token, library_name="mlxui", library_version=__version__)
    timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    try:
        response = get_session().get(url, params=params, headers=headers, timeout=timeout)
        hf_raise_for_status(response)
        items = response.json()
    except HUB_ERRORS as exc:
        raise hub_error(exc, endpoint=endpoint) from exc
    if not isinstance(items, list):
        raise HubError(f"The Hub at {endpoint} sent an unreadable answer.")
    return items, response.links.get("next", {}).get("url")


def _same_origin(url: str | None, endpoint: str) -> bool:
    """Follow a next-page link only to the endpoint we were given: it receives the token."""
    if url is None:
        return False
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
