"""Planning a repo download: which Hub, which commit, which files (sizes, hashes), what is on disk.

huggingface_hub 2.4 writes each download to a process-unique partial file and deletes it on any
failure, so nothing survives a restart (docs/architecture.md §6). Here huggingface_hub still answers
every Hub question (commit, file list with sizes and hashes, URLs, auth headers, error classes);
only the bytes are ours: `fetcher.py` moves them over several connections into
`blobs/<etag>.incomplete` with a map of its finished ranges, verified (sha256 for LFS files, the
git blob sha1 otherwise) before it becomes `blobs/<etag>` (docs/architecture.md §11).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers

from mlxui import __version__
from mlxui.hub import cache, segment_map
from mlxui.hub.errors import DownloadError

_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class FilePlan:
    path: str  # inside the repo, with "/"
    size: int
    blob_id: str  # git sha1 of the file (of its LFS pointer for LFS files)
    sha256: str | None  # content sha256, LFS files only

    @property
    def etag(self) -> str:
        """The blob's name in the cache: what the Hub sends as (X-Linked-)ETag."""
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class RepoPlan:
    repo_id: str
    revision: str
    commit: str
    files: tuple[FilePlan, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def tree_listing(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for f in self.files:
            out[f.path] = {"size": f.size, "blob_id": f.blob_id}
            if f.sha256:
                out[f.path] |= {"lfs_sha256": f.sha256, "lfs_size": f.size}
        return out


@dataclass(frozen=True)
class Hub:
    """Where to ask, and as whom. `token=None` lets huggingface_hub use HF_TOKEN or a saved login."""

    endpoint: str
    token: str | None = None

    def api(self) -> HfApi:
        return HfApi(
            endpoint=self.endpoint, token=self.token, library_name="mlxui", library_version=__version__
        )

    def headers(self) -> dict[str, str]:
        headers = build_hf_headers(token=self.token, library_name="mlxui", library_version=__version__)
        headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets into the file itself
        return headers

    def file_url(self, repo_id: str, commit: str, path: str) -> str:
        return hf_hub_url(repo_id, path, revision=commit, endpoint=self.endpoint)


async def plan_repo(hub: Hub, repo_id: str, revision: str) -> RepoPlan:
    """Commit and file list (sizes, hashes) of `repo_id` at `revision`, the way snapshot_download asks."""

    def ask() -> RepoPlan:
        api = hub.api()
        commit = api.model_info(repo_id, revision=revision).sha
        if not commit:
            raise DownloadError(f"The Hub did not say which commit {revision!r} of {repo_id} is.")
        cache.check_commit(commit)
        entries = api.list_repo_tree(repo_id, recursive=True, revision=commit)
        files = []
        for entry in entries:
            if not isinstance(entry, RepoFile):
                continue
            sha256 = entry.lfs.sha256 if entry.lfs is not None else None
            f = FilePlan(cache.check_filename(entry.path), int(entry.size), entry.blob_id, sha256)
            files.append(f)
            cache.check_etag(f.etag)
        return RepoPlan(repo_id, revision, commit, tuple(sorted(files, key=lambda f: f.path)))

    return await asyncio.to_thread(ask)


def bytes_on_disk(cache_dir: Path, plan: RepoPlan, f: FilePlan) -> tuple[int, bool]:
    """(bytes of `f` already here, whether it is complete in this snapshot). Blocking: stats only."""
    pointer = cache.pointer_path(cache_dir, plan.repo_id, plan.commit, f.path)
    if pointer.exists():
        return f.size, True
    blob = cache.blob_path(cache_dir, plan.repo_id, f.etag)
    if blob.exists() and blob.stat().st_size == f.size:
        return f.size, False
    partial = cache.partial_path(cache_dir, plan.repo_id, f.etag)
    return segment_map.bytes_done(partial, f.size), False
