"""Repository data behind the fake Hub: file hashing and the JSON shapes huggingface_hub parses.

Kept apart from the HTTP server in fakehub.py. The JSON shapes follow what huggingface_hub 2.4
reads in hf_api.ModelInfo / RepoSibling / RepoFile (keys such as `blobId`, `lfs.sha256` in
siblings but `lfs.oid` in tree entries, `pointerSize`).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.harness.fakehub_http import HubError

# Files stored in Git LFS on the fake Hub: the real Hub tracks weights and any big file in LFS,
# which changes the ETag (sha256 instead of the git blob sha1) and adds X-Linked-* headers.
LFS_SUFFIXES = (".safetensors",)
LFS_MIN_SIZE = 1_000_000
_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
# Properties a listing shows without `full` or `expand` (as the real /api/models does).
LIST_DEFAULT_FIELDS = (
    "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag", "library_name", "createdAt",
)  # fmt: skip
SORT_KEYS = {
    "downloads": "downloads",
    "likes": "likes",
    "lastModified": "last_modified",
    "last_modified": "last_modified",
    "createdAt": "created_at",
    "created_at": "created_at",
    "trendingScore": "trending_score",
    "trending_score": "trending_score",
}


@dataclass(frozen=True)
class RepoFileEntry:
    """One file of a commit; bytes are streamed from `source` when served."""

    path: str
    source: Path
    size: int
    git_oid: str  # sha1 of the git blob (of the LFS pointer for LFS files)
    sha256: str | None  # set for LFS files only
    pointer_size: int | None

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        return self.sha256 if self.sha256 is not None else self.git_oid


@dataclass
class HubRepo:
    repo_id: str
    gated: bool = False
    private: bool = False
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = "text-generation"
    library_name: str | None = "mlx"
    last_modified: str = ""
    created_at: str = ""
    trending_score: int = 0
    commits: dict[str, dict[str, RepoFileEntry]] = field(default_factory=dict)
    head: str = ""  # commit sha that `main` points to

    def resolve(self, revision: str) -> str | None:
        """Commit sha for a branch name or full sha; None for an unknown revision."""
        if revision == "main":
            return self.head
        return revision if revision in self.commits else None

    @property
    def effective_tags(self) -> list[str]:
        # The real Hub lists the library and the pipeline among a model's tags.
        extra = [t for t in (self.library_name, self.pipeline_tag) if t]
        return list(dict.fromkeys([*self.tags, *extra]))


def iso_time(index: int, *, days: int = 0) -> str:
    """A deterministic timestamp in the Hub's format, distinct per repo index."""
    moment = _BASE_TIME + timedelta(hours=index, days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def scan_folder(folder: Path) -> dict[str, RepoFileEntry]:
    """Hash every file under `folder` (hidden names are skipped, like a clean git checkout)."""
    entries: dict[str, RepoFileEntry] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        entries[rel.as_posix()] = _hash_file(rel.as_posix(), path)
    return entries


def _hash_file(rel: str, path: Path) -> RepoFileEntry:
    size = path.stat().st_size
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    sha256 = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    if not (rel.endswith(LFS_SUFFIXES) or size > LFS_MIN_SIZE):
        return RepoFileEntry(rel, path, size, sha1.hexdigest(), None, None)
    digest = sha256.hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {size}\n".encode()
    pointer_oid = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
    return RepoFileEntry(rel, path, size, pointer_oid, digest, len(pointer))


def commit_sha(repo_id: str, files: dict[str, RepoFileEntry]) -> str:
    """Deterministic 40-hex commit id: same repo and content give the same commit."""
    h = hashlib.sha1(repo_id.encode())
    for path, entry in sorted(files.items()):
        h.update(f"\0{path}\0{entry.git_oid}".encode())
    return h.hexdigest()


def model_json(
    repo: HubRepo,
    sha: str,
    *,
    listing: bool,
    full: bool = False,
    blobs: bool = False,
    expand: list[str] | None = None,
    extras: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The JSON of one model, as /api/models (listing=True) or /api/models/{id} answers it."""
    files = repo.commits[sha]
    every = _all_properties(repo, sha, files, blobs=blobs)
    if expand:
        keys: tuple[str, ...] = tuple(k for k in expand if k in every)
    elif listing and not full:
        keys = LIST_DEFAULT_FIELDS + extras
    else:
        keys = tuple(every)
    out: dict[str, Any] = {"_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id}
    out.update({k: every[k] for k in keys if k in every and every[k] is not None})
    if not expand:
        out["modelId"] = repo.repo_id
    return out


def _all_properties(
    repo: HubRepo, sha: str, files: dict[str, RepoFileEntry], *, blobs: bool
) -> dict[str, Any]:
    author = repo.repo_id.split("/")[0]
    return {
        "author": author,
        "sha": sha,
        "lastModified": repo.last_modified,
        "private": repo.private,
        "disabled": False,
        "gated": "manual" if repo.gated else False,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "trendingScore": repo.trending_score,
        "library_name": repo.library_name,
        "tags": repo.effective_tags,
        "pipeline_tag": repo.pipeline_tag,
        "createdAt": repo.created_at,
        "cardData": _card_data(files),
        "config": _config(files),
        "siblings": [_sibling(e, blobs=blobs) for e in files.values()],
        "spaces": [],
        "safetensors": _safetensors_info(files),
        "usedStorage": sum(e.size for e in files.values()),
    }


def _sibling(entry: RepoFileEntry, *, blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": entry.path}
    out: dict[str, Any] = {"rfilename": entry.path, "blobId": entry.git_oid, "size": entry.size}
    if entry.is_lfs:
        out["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return out


def tree_json(
    files: dict[str, RepoFileEntry], sha: str, prefix: str, *, recursive: bool, expand: bool, date: str
):
    """Entries of /api/models/{id}/tree/{rev}/{prefix}; None when `prefix` names nothing."""
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    dirs: set[str] = set()
    out: list[dict[str, Any]] = []
    for path, entry in files.items():
        if not path.startswith(base):
            continue
        rest = path[len(base) :].split("/")
        # every folder between `prefix` and the file (only the first one when not recursive)
        for depth in range(1, len(rest) if recursive else min(2, len(rest))):
            dirs.add(base + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            out.append(_tree_file(entry, sha, expand=expand, date=date))
    if prefix and not out and not dirs:
        return None
    for d in dirs:
        oid = hashlib.sha1(f"{sha}:{d}".encode()).hexdigest()
        out.append({"type": "directory", "oid": oid, "size": 0, "path": d})
    return sorted(out, key=lambda e: e["path"])


def _tree_file(entry: RepoFileEntry, sha: str, *, expand: bool, date: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": entry.path}
    if entry.is_lfs:
        out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    if expand:
        out["lastCommit"] = {"id": sha, "title": "Upload folder", "date": date}
    return out


def _card_data(files: dict[str, RepoFileEntry]) -> dict[str, Any] | None:
    """YAML front matter of README.md, like the Hub's `cardData`."""
    entry = files.get("README.md")
    if entry is None:
        return None
    text = entry.source.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    head = text[3:].split("\n---", 1)[0]
    try:
        data = yaml.safe_load(head)
    except yaml.YAMLError:
        return None  # a broken card has no cardData on the Hub either
    return data if isinstance(data, dict) else None


def _config(files: dict[str, RepoFileEntry]) -> dict[str, Any] | None:
    """The slice of config.json / tokenizer_config.json that the Hub copies into `config`."""
    cfg = _read_json(files.get("config.json"))
    if cfg is None:
        return None
    out = {k: cfg[k] for k in ("architectures", "model_type", "quantization_config") if k in cfg}
    tok = _read_json(files.get("tokenizer_config.json"))
    if tok is not None:
        keys = ("bos_token", "eos_token", "pad_token", "unk_token", "chat_template")
        out["tokenizer_config"] = {k: tok[k] for k in keys if k in tok}
    return out


def _read_json(entry: RepoFileEntry | None) -> dict[str, Any] | None:
    if entry is None or entry.size > 5_000_000:
        return None
    try:
        data = json.loads(entry.source.read_bytes())
    except (ValueError, OSError):
        return None  # not JSON: the Hub simply shows no config
    return data if isinstance(data, dict) else None


def _safetensors_info(files: dict[str, RepoFileEntry]) -> dict[str, Any] | None:
    """Parameter counts per dtype from the safetensors headers, like the Hub's `safetensors`."""
    params: dict[str, int] = {}
    for entry in files.values():
        if entry.path.endswith(".safetensors"):
            for dtype, count in _safetensors_counts(entry.source).items():
                params[dtype] = params.get(dtype, 0) + count
    return {"parameters": params, "total": sum(params.values())} if params else None


def _safetensors_counts(path: Path) -> dict[str, int]:
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                return {}
            header = json.loads(fh.read(length))
    except (OSError, struct.error, ValueError):
        return {}  # random test bytes are not a safetensors file: no parameter counts
    counts: dict[str, int] = {}
    for name, spec in header.items():
        if name == "__metadata__" or not isinstance(spec, dict):
            continue
        n = 1
        for dim in spec.get("shape", []):
            n *= int(dim)
        counts[spec.get("dtype", "?")] = counts.get(spec.get("dtype", "?"), 0) + n
    return counts


def listing_filter(repo: HubRepo, params: dict[str, list[str]]) -> bool:
    """Whether a repo matches the /api/models query filters."""

    def first(name: str) -> str | None:
        return params[name][0] if params.get(name) else None

    if (search := first("search")) and search.lower() not in repo.repo_id.lower():
        return False
    if (author := first("author")) and repo.repo_id.split("/")[0].lower() != author.lower():
        return False
    tags = {t.lower() for t in repo.effective_tags}
    wanted = [v for name in ("filter", "library") for raw in params.get(name, []) for v in raw.split(",")]
    if any(w.strip().lower() not in tags for w in wanted if w.strip()):
        return False
    if (pipeline := first("pipeline_tag")) and repo.pipeline_tag != pipeline:
        return False
    gated = first("gated")
    return gated is None or (gated.lower() == "true") == repo.gated


def sort_repos(repos: list[HubRepo], sort: str | None, direction: str | None) -> list[HubRepo]:
    """Sort by a Hub sort key; descending unless direction=1. No sort keeps insertion order."""
    if sort is None:
        return repos
    attr = SORT_KEYS[sort]
    ordered = sorted(repos, key=lambda r: r.repo_id)  # ties broken by id, deterministically
    return sorted(ordered, key=lambda r: getattr(r, attr), reverse=direction != "1")


def check_repo_id(repo_id: str) -> None:
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")


def resolve_rev(repo: HubRepo, rev: str) -> str:
    sha = repo.resolve(rev)
    if sha is None:
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
    return sha
