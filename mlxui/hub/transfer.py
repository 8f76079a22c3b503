"""Planning a repo download and moving the bytes of one file, resumably.

huggingface_hub 2.4 writes each download to a process-unique partial file and deletes it on any
failure, so nothing survives a restart (docs/architecture.md §6). Here huggingface_hub still answers
every Hub question (commit, file list with sizes and hashes, URLs, auth headers, error classes);
only the byte stream is ours: an httpx GET with `Range: bytes=N-` from the N bytes already in
`blobs/<etag>.incomplete`, verified (sha256 for LFS files, the git blob sha1 otherwise) before it
becomes `blobs/<etag>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import filelock
import httpx
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers

from mlxui import __version__
from mlxui.hub import cache, segment_map
from mlxui.hub.errors import DownloadError, status_error

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


async def fetch_file(
    client: httpx.AsyncClient,
    hub: Hub,
    cache_dir: Path,
    plan: RepoPlan,
    f: FilePlan,
    on_bytes: Callable[[int], None],
) -> None:
    """One attempt at getting `f` into the cache, continuing from the bytes already on disk.

    `on_bytes(delta)` reports progress (negative if a partial file had to be thrown away). Raises a
    HubError or the transport/HTTP error (errors.hub_error words it); the partial file stays for
    the next attempt unless its content was proven wrong.
    """
    url = hub.file_url(plan.repo_id, plan.commit, f.path)
    # HEAD through huggingface_hub: its error classes (gated, not found, ...) and the blob name.
    meta = await asyncio.to_thread(
        get_hf_file_metadata, url, token=hub.token, endpoint=hub.endpoint, library_name="mlxui"
    )
    etag = cache.check_etag(meta.etag or f.etag)
    if meta.size is not None and meta.size != f.size:
        raise DownloadError(f"{f.path} changed size on the Hub while downloading.", transient=True)
    blob = cache.blob_path(cache_dir, plan.repo_id, etag)
    partial = cache.partial_path(cache_dir, plan.repo_id, etag)
    pointer = cache.pointer_path(cache_dir, plan.repo_id, plan.commit, f.path)
    lock_file = cache.lock_path(cache_dir, plan.repo_id, etag)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    blob.parent.mkdir(parents=True, exist_ok=True)
    # The same lock huggingface_hub takes: another process (mlxui or an HF tool) never writes
    # into the same partial file at the same time.
    lock = filelock.FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout as exc:
        raise DownloadError(
            f"Another program is downloading {f.path} into the same cache.", transient=True
        ) from exc
    try:
        if not (blob.exists() and blob.stat().st_size == f.size):
            await _transfer(client, hub.headers(), url, partial, f, plan.repo_id, on_bytes)
            cache.place_blob(partial, blob)
        cache.link_pointer(blob, pointer)
    finally:
        lock.release()


async def _transfer(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    url: str,
    partial: Path,
    f: FilePlan,
    repo_id: str,
    on_bytes: Callable[[int], None],
) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    if offset > f.size:  # cannot be ours: start over
        partial.unlink()
        on_bytes(-f.size)
        offset = 0
    digest = _new_digest(f)
    if offset:
        await asyncio.to_thread(_hash_prefix, partial, digest, offset)
    if offset < f.size:
        if offset:
            headers = headers | {"Range": f"bytes={offset}-"}
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:  # the server disagrees about what is left: start over
                partial.unlink(missing_ok=True)
                on_bytes(-offset)
                raise DownloadError(
                    f"The Hub refused to continue {f.path}; starting it over.", transient=True
                )
            if response.status_code not in (200, 206):
                raise status_error(response.status_code, repo_id, downloading=True)
            if response.status_code == 206 and not _range_starts_at(response, offset):
                raise DownloadError(f"The Hub answered the wrong part of {f.path}.", transient=True)
            # Appending: bytes already written survive any interruption, even kill -9.
            with partial.open("ab") as out:
                if response.status_code == 200 and offset:  # Range ignored: the body is the whole file
                    out.truncate(0)
                    on_bytes(-offset)
                    offset, digest = 0, _new_digest(f)
                # Writes and hash updates are per network chunk (tens of KB): microseconds each.
                async for chunk in response.aiter_raw():
                    if offset + len(chunk) > f.size:
                        raise DownloadError(f"The Hub sent more bytes than {f.path} has.", transient=True)
                    out.write(chunk)
                    digest.update(chunk)
                    offset += len(chunk)
                    on_bytes(len(chunk))
    if offset != f.size:
        raise DownloadError(f"The connection closed before the end of {f.path}.", transient=True)
    if digest.hexdigest() != (f.sha256 or f.blob_id):
        partial.unlink(missing_ok=True)  # proven wrong: keeping it would poison every retry
        on_bytes(-f.size)
        raise DownloadError(
            f"{f.path} arrived corrupted (checksum mismatch); downloading it again.", transient=True
        )


def _new_digest(f: FilePlan) -> hashlib._Hash:
    if f.sha256:
        return hashlib.sha256()
    # The git blob id of a plain file: sha1 over "blob <size>\0" + content.
    return hashlib.sha1(b"blob %d\0" % f.size, usedforsecurity=False)


def _hash_prefix(path: Path, digest: hashlib._Hash, length: int) -> None:
    with path.open("rb") as fh:
        left = length
        while left > 0:
            block = fh.read(min(_HASH_BLOCK, left))
            if not block:
                raise DownloadError(f"{path.name} shrank while resuming.", transient=True)
            digest.update(block)
            left -= len(block)


def _range_starts_at(response: httpx.Response, offset: int) -> bool:
    m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return m is not None and int(m.group(1)) == offset
