"""A model's details (capabilities, files with sizes, model card) from the Hub or a local folder.

For a Hub model only the small files are read (capabilities.SMALL_FILES that the repo has, plus
README.md), straight into memory: `hf_hub_download` would put them in the HF cache, where
`scan_cache_dir` (and our Local list) would take them for a half-downloaded model. The result is
cached in the `model_info` table per repo and commit, so a card shown again asks the Hub nothing.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_url
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from mlxui import __version__
from mlxui.hub.capabilities import SMALL_FILES, Capabilities, parse_capabilities, read_local_capabilities
from mlxui.hub.capability_rules import SENTENCE_TRANSFORMERS_FILES
from mlxui.hub.errors import HUB_ERRORS, HubError, hub_error
from mlxui.hub.memory import Fit, MemoryEstimate, fit_on_this_machine
from mlxui.hub.repo_id import check_repo_id
from mlxui.hub.search import CONNECT_TIMEOUT_S, READ_TIMEOUT_S

CACHE_VERSION = 1  # bump when the cached shape or the capability rules change: rows refetch
CACHE_MAX_AGE = timedelta(days=1)  # a row is trusted this long when the caller knows no sha
README_MAX_BYTES = 512 * 1024
SMALL_FILE_MAX_BYTES = 16 * 1024 * 1024
_FETCH_WORKERS = 4  # small files are fetched side by side: a card fills in one round trip
# the sentence-transformers files only need to exist (the file list says so): never fetched
_FETCHED_FILES = tuple(name for name in SMALL_FILES if name not in SENTENCE_TRANSFORMERS_FILES)
_SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/[0-9a-f]{40}/?$")
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*(\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class RepoFile:
    path: str  # inside the repo, with "/"
    size: int | None  # None when the Hub did not say


@dataclass
class ModelDetails:
    """What a detail drawer shows. `source` is "hub" (read from the Hub or its cached copy) or
    "local" (a folder on disk: exact parameter count, sizes on disk)."""

    repo_id: str | None
    capabilities: Capabilities
    source: Literal["hub", "local"]
    files: list[RepoFile] = field(default_factory=list)
    readme: str | None = None  # the raw README.md (front matter included); see `readme_markdown`
    sha: str | None = None  # the commit these details describe
    path: Path | None = None  # the folder, for local models
    gated: bool = False
    private: bool = False
    from_cache: bool = False  # True: read from the database, the Hub was not asked

    @property
    def readme_markdown(self) -> str | None:
        """The model card without its YAML front matter: what to render (sanitized) in the UI."""
        return _FRONT_MATTER.sub("", self.readme, count=1) if self.readme else self.readme

    def memory(self) -> tuple[MemoryEstimate, Fit | None]:
        """Estimate and verdict against this machine's memory now (not cached: memory changes)."""
        return fit_on_this_machine(self.capabilities)

    def to_dict(self, *, include_readme: bool = False) -> dict[str, Any]:
        """JSON for `mlxui models info --json`: every capability at the top level, then the rest."""
        estimate, verdict = self.memory()
        caps = {k: v for k, v in self.capabilities.to_dict().items() if k != "repo_id"}
        out: dict[str, Any] = {"repo_id": self.repo_id, **caps}
        out |= {
            "source": self.source,
            "path": str(self.path) if self.path else None,
            "sha": self.sha,
            "gated": self.gated,
            "private": self.private,
            "badges": self.capabilities.badges(),
            "fit": verdict,
            "memory": {
                "total_bytes": estimate.total_bytes,
                "weights_bytes": estimate.weights_bytes,
                "kv_cache_bytes": estimate.kv_cache_bytes,
                "overhead_bytes": estimate.overhead_bytes,
                "context_tokens": estimate.context_tokens,
                "notes": estimate.notes,
            },
            "files": [{"path": f.path, "size": f.size} for f in self.files],
        }
        if include_readme:
            out["readme"] = self.readme
        return out


# ----- Hub models ---------------------------------------------------------------------------------
_inflight: dict[tuple[str, str, str | None], asyncio.Task[ModelDetails]] = {}


async def get_model_details(
    repo_id: str,
    *,
    sha: str | None = None,
    refresh: bool = False,
    endpoint: str | None = None,
    token: str | None = None,
    use_db: bool = True,
) -> ModelDetails:
    """Details of a Hub model, from the database when a row for `sha` (or, without a sha, one
    younger than CACHE_MAX_AGE) exists, else from the Hub (then stored).

    Pass the `sha` a search result carries, so a new commit is noticed. `use_db=False` when no
    database is open (never caches). Raises BadRepoId, RepoNotFound, GatedRepo (the files need
    a token), HubUnavailable or HubError.
    """
    repo_id = check_repo_id(repo_id)
    if use_db and not refresh:
        cached = await _read_cache(repo_id, sha)
        if cached is not None:
            return cached
    # A card and its drawer asking at once share one fetch, and its one write to the database.
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    key = (repo_id, endpoint, token)
    task = _inflight.get(key)
    if task is None or task.get_loop() is not asyncio.get_running_loop():
        task = asyncio.create_task(_fetch_and_store(repo_id, endpoint, token, use_db))
        _inflight[key] = task
        task.add_done_callback(lambda t: _inflight.pop(key, None) if _inflight.get(key) is t else None)
    return await asyncio.shield(task)


async def _fetch_and_store(repo_id: str, endpoint: str, token: str | None, use_db: bool) -> ModelDetails:
    details = await asyncio.to_thread(fetch_hub_details, repo_id, endpoint, token)
    if use_db:
        await _write_cache(details)
    return details


async def get_capabilities(repo_id: str, **options: Any) -> Capabilities:
    """`get_model_details(...).capabilities` (same options and errors)."""
    return (await get_model_details(repo_id, **options)).capabilities


async def cached_capabilities(repo_ids: list[str]) -> dict[str, Capabilities]:
    """Capabilities already in the database for these repos (any age), without asking the Hub:
    lets the list show badges and filter by them for every model seen before."""
    from mlxui.db.models import ModelInfo

    rows = await ModelInfo.filter(repo_id__in=list(repo_ids))
    out = {}
    for row in rows:
        data = row.data if isinstance(row.data, dict) else {}
        if data.get("version") == CACHE_VERSION and isinstance(data.get("capabilities"), dict):
            out[row.repo_id] = Capabilities.from_dict(data["capabilities"])
    return out


def fetch_hub_details(repo_id: str, endpoint: str, token: str | None = None) -> ModelDetails:
    """Ask the Hub (blocking): model info with file sizes, then the small files and README.md."""
    api = HfApi(endpoint=endpoint, token=token, library_name="mlxui", library_version=__version__)
    try:
        info = api.model_info(repo_id, files_metadata=True, timeout=READ_TIMEOUT_S)
    except HUB_ERRORS as exc:
        raise hub_error(exc, endpoint=endpoint, repo_id=repo_id) from exc
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    sha = info.sha
    wanted = [n for n in _FETCHED_FILES if n in sizes and (sizes[n] or 0) <= SMALL_FILE_MAX_BYTES]
    readme = "README.md" if "README.md" in sizes and (sizes["README.md"] or 0) <= README_MAX_BYTES else None
    names = [*wanted, *([readme] if readme else [])]
    with ThreadPoolExecutor(max_workers=_FETCH_WORKERS, thread_name_prefix="hub-small-files") as pool:
        fetched = list(pool.map(lambda n: _fetch_file(repo_id, sha or "main", n, endpoint, token), names))
    contents = {name: body for name, body in zip(names, fetched, strict=True) if body is not None}
    problems = [
        f"{n} vanished from the Hub while reading" for n, b in zip(names, fetched, strict=True) if b is None
    ]
    dtype_counts = dict(info.safetensors.parameters) if info.safetensors else None
    known_sizes = {name: size for name, size in sizes.items() if size is not None}
    caps = parse_capabilities(
        {n: b for n, b in contents.items() if n != "README.md"},
        repo_id=repo_id,
        file_sizes=known_sizes or None,
        dtype_counts=dtype_counts,
    )
    caps.problems = [*problems, *caps.problems]
    readme_text = contents["README.md"].decode("utf-8", errors="replace") if "README.md" in contents else None
    return ModelDetails(
        repo_id=repo_id,
        capabilities=caps,
        source="hub",
        files=[RepoFile(name, size) for name, size in sorted(sizes.items())],
        readme=readme_text,
        sha=sha,
        gated=bool(info.gated),
        private=bool(info.private),
    )


def _fetch_file(repo_id: str, revision: str, filename: str, endpoint: str, token: str | None) -> bytes | None:
    """One small file's bytes (blocking); None when the Hub no longer has it."""
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    headers = build_hf_headers(token=token, library_name="mlxui", library_version=__version__)
    timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    try:
        response = get_session().get(url, headers=headers, timeout=timeout)
        hf_raise_for_status(response)
    except RemoteEntryNotFoundError:
        return None
    except HUB_ERRORS as exc:
        raise hub_error(exc, endpoint=endpoint, repo_id=repo_id) from exc
    return response.content


async def _read_cache(repo_id: str, sha: str | None) -> ModelDetails | None:
    from mlxui.db.models import ModelInfo

    row = await ModelInfo.get_or_none(repo_id=repo_id)
    if row is None or not isinstance(row.data, dict) or row.data.get("version") != CACHE_VERSION:
        return None
    if sha is not None and row.sha != sha:
        return None  # a new commit on the Hub
    if sha is None and row.fetched_at is not None and datetime.now(UTC) - row.fetched_at > CACHE_MAX_AGE:
        return None
    data = row.data
    return ModelDetails(
        repo_id=repo_id,
        capabilities=Capabilities.from_dict(data.get("capabilities") or {}),
        source="hub",
        files=[RepoFile(str(p), s if isinstance(s, int) else None) for p, s in data.get("files") or []],
        readme=data.get("readme"),
        sha=row.sha,
        gated=bool(data.get("gated")),
        private=bool(data.get("private")),
        from_cache=True,
    )


async def _write_cache(details: ModelDetails) -> None:
    from mlxui.db.models import ModelInfo

    data = {
        "version": CACHE_VERSION,
        "capabilities": details.capabilities.to_dict(),
        "files": [[f.path, f.size] for f in details.files],
        "readme": details.readme,
        "gated": details.gated,
        "private": details.private,
    }
    await ModelInfo.update_or_create(repo_id=details.repo_id, defaults={"sha": details.sha, "data": data})


# ----- local folders ------------------------------------------------------------------------------
def read_local_details(folder: Path, repo_id: str | None = None) -> ModelDetails:
    """Details of a model folder (blocking: reads small files and safetensors headers).

    An HF cache snapshot (`models--org--name/snapshots/<sha>`) gets its repo id and sha from its
    path when `repo_id` is not given. Raises HubError when the folder is missing.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HubError(f"{folder} is not a folder.")
    folder = folder.absolute()
    snapshot = _SNAPSHOT.search(folder.as_posix())
    sha = folder.name if snapshot else None
    if repo_id is None and snapshot:
        repo_id = f"{snapshot['org']}/{snapshot['name']}"
    caps = read_local_capabilities(folder, repo_id=repo_id)
    files = _list_folder(folder)
    readme_path = folder / "README.md"
    readme = None
    if readme_path.is_file() and readme_path.stat().st_size <= README_MAX_BYTES:
        readme = readme_path.read_text(encoding="utf-8", errors="replace")
    return ModelDetails(
        repo_id=repo_id, capabilities=caps, source="local", files=files, readme=readme, sha=sha, path=folder
    )


async def local_model_details(folder: Path, repo_id: str | None = None) -> ModelDetails:
    """`read_local_details` in a worker thread, for async callers."""
    return await asyncio.to_thread(read_local_details, folder, repo_id)


def _list_folder(folder: Path) -> list[RepoFile]:
    """Every non-hidden file with its size (following the snapshot's symlinks to the blobs)."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        try:
            if path.is_file():
                out.append(RepoFile(rel.as_posix(), path.stat().st_size))
        except OSError:
            out.append(RepoFile(rel.as_posix(), None))  # unreadable: listed, size unknown
    return out
