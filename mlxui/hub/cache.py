"""The Hugging Face cache on disk: where blobs, partial files, snapshots and refs live.

mlxui writes exactly the layout huggingface_hub writes, so `scan_cache_dir`,
`snapshot_download(local_files_only=True)` and mlx_lm find a model mlxui downloaded:

    <cache>/models--org--name/blobs/<etag>               the file content (LFS: etag = sha256)
    <cache>/models--org--name/blobs/<etag>.incomplete    mlxui's partial file, stable across processes
    <cache>/models--org--name/snapshots/<commit>/<path>  relative symlink to ../../blobs/<etag>
    <cache>/models--org--name/refs/<revision>            the commit a branch/tag points to
    <cache>/models--org--name/trees/<commit>.json        the file listing (huggingface_hub's tree cache)
    <cache>/.locks/models--org--name/<etag>.lock         the lock huggingface_hub also takes

The partial file sits next to its blob so finishing is a rename, never a copy. huggingface_hub's own
partial files are `<etag>.<random>.incomplete`, so the two never write into each other's file.
Everything here is blocking file I/O: call it from a thread (`asyncio.to_thread`) in async code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import scan_cache_dir
from huggingface_hub.errors import CacheNotFound, CorruptedCacheException
from huggingface_hub.file_download import repo_folder_name

PARTIAL_SUFFIX = ".incomplete"
TREE_FORMAT_VERSION = 1  # the format huggingface_hub 2.x reads from trees/<commit>.json
_ETAG = re.compile(r"[0-9A-Za-z_-]{16,128}")  # hex digests in practice; never dots or slashes
_COMMIT = re.compile(r"[0-9a-f]{40}")
_OUR_PARTIAL = re.compile(r"[0-9A-Za-z_-]{16,128}\.incomplete")


@dataclass(frozen=True)
class CachedRevision:
    """One revision (commit) of a repo in the cache, as `scan_cache_dir` sees it: no file is read.
    The models the user sees (with capabilities and added folders) come from `local.list_local_models`."""

    repo_id: str
    commit: str
    refs: tuple[str, ...]  # branch/tag names pointing at this commit, e.g. ("main",)
    path: Path  # the snapshot folder: what mlx_lm.server --model takes
    size_on_disk: int
    nb_files: int
    last_modified: float  # unix time
    complete: bool  # False while a download is still filling this snapshot


def repo_dir(cache_dir: Path, repo_id: str) -> Path:
    return Path(cache_dir) / repo_folder_name(repo_id=repo_id, repo_type="model")


def check_etag(etag: str) -> str:
    """An ETag becomes a file name: refuse anything but a plain digest."""
    if not _ETAG.fullmatch(etag):
        raise ValueError(f"The Hub sent an unusable file id {etag[:80]!r}")
    return etag


def check_commit(commit: str) -> str:
    if not _COMMIT.fullmatch(commit):
        raise ValueError(f"The Hub sent an unusable commit id {commit[:80]!r}")
    return commit


def blob_path(cache_dir: Path, repo_id: str, etag: str) -> Path:
    return repo_dir(cache_dir, repo_id) / "blobs" / check_etag(etag)


def partial_path(cache_dir: Path, repo_id: str, etag: str) -> Path:
    return repo_dir(cache_dir, repo_id) / "blobs" / (check_etag(etag) + PARTIAL_SUFFIX)


def lock_path(cache_dir: Path, repo_id: str, etag: str) -> Path:
    folder = repo_folder_name(repo_id=repo_id, repo_type="model")
    return Path(cache_dir) / ".locks" / folder / f"{check_etag(etag)}.lock"


def snapshot_dir(cache_dir: Path, repo_id: str, commit: str) -> Path:
    return repo_dir(cache_dir, repo_id) / "snapshots" / check_commit(commit)


def check_filename(filename: str) -> str:
    """A repo file name from the Hub becomes a path: refuse any that would leave the snapshot."""
    parts = filename.split("/")
    if filename.startswith("/") or "\\" in filename or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"The Hub listed an unsafe file name {filename[:200]!r}")
    return filename


def pointer_path(cache_dir: Path, repo_id: str, commit: str, filename: str) -> Path:
    """Where a repo file appears in the snapshot."""
    return snapshot_dir(cache_dir, repo_id, commit).joinpath(*check_filename(filename).split("/"))


def tag_cache_dir(cache_dir: Path) -> None:
    """Mark the cache for backup tools (the CACHEDIR.TAG standard), as huggingface_hub does."""
    tag = Path(cache_dir) / "CACHEDIR.TAG"
    if not tag.exists():
        tag.write_text(
            "Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag (Hugging Face cache, written by mlxui).\n"
            "# For information about cache directory tags, see: https://bford.info/cachedir/\n"
        )


def place_blob(partial: Path, blob: Path) -> None:
    """Finish a verified partial file: a rename within one folder, so no second copy on disk."""
    os.replace(partial, blob)


def link_pointer(blob: Path, pointer: Path) -> None:
    """Point a snapshot entry at its blob with a relative symlink, as huggingface_hub does."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:
        # A filesystem without symlinks: a hard link still keeps one copy of the bytes.
        os.link(blob, pointer)


def write_ref(cache_dir: Path, repo_id: str, revision: str, commit: str) -> None:
    """Record which commit `revision` (a branch or tag) means; nothing to do for a commit id."""
    if revision == commit:
        return
    ref = repo_dir(cache_dir, repo_id) / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(ref.name + ".mlxui.tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)  # readers never see a half-written ref


def write_tree_listing(cache_dir: Path, repo_id: str, commit: str, files: dict[str, dict[str, Any]]) -> None:
    """Write the file listing huggingface_hub keeps in trees/<commit>.json.

    With it, `snapshot_download(local_files_only=True)` refuses a half-filled snapshot instead of
    returning it, exactly as after an interrupted huggingface_hub download.
    """
    path = repo_dir(cache_dir, repo_id) / "trees" / f"{check_commit(commit)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".mlxui.tmp")
    tmp.write_text(json.dumps({"format_version": TREE_FORMAT_VERSION, "files": files}, indent=1))
    os.replace(tmp, path)


def read_tree_listing(cache_dir: Path, repo_id: str, commit: str) -> list[str] | None:
    """File names listed for a commit, or None when no (readable) listing exists."""
    path = repo_dir(cache_dir, repo_id) / "trees" / f"{check_commit(commit)}.json"
    try:
        data = json.loads(path.read_text())
        return list(data["files"]) if data.get("format_version") == TREE_FORMAT_VERSION else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def snapshot_complete(cache_dir: Path, repo_id: str, commit: str) -> bool:
    """True when every listed file is in the snapshot; a snapshot without a listing counts as complete
    (older huggingface_hub versions and other tools do not write one)."""
    names = read_tree_listing(cache_dir, repo_id, commit)
    if not snapshot_dir(cache_dir, repo_id, commit).is_dir():
        return False
    return names is None or all(pointer_path(cache_dir, repo_id, commit, n).exists() for n in names)


def cached_revisions(cache_dir: Path) -> list[CachedRevision]:
    """Every cached model revision, newest first, found by huggingface_hub's `scan_cache_dir`."""
    if not Path(cache_dir).is_dir():
        return []
    try:
        info = scan_cache_dir(cache_dir)
    except (CacheNotFound, CorruptedCacheException):
        return []
    models = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            models.append(
                CachedRevision(
                    repo_id=repo.repo_id,
                    commit=rev.commit_hash,
                    refs=tuple(sorted(rev.refs)),
                    path=rev.snapshot_path,
                    size_on_disk=rev.size_on_disk,
                    nb_files=rev.nb_files,
                    last_modified=rev.last_modified,
                    complete=snapshot_complete(cache_dir, repo.repo_id, rev.commit_hash),
                )
            )
    return sorted(models, key=lambda m: (-m.last_modified, m.repo_id))


def delete_repo(cache_dir: Path, repo_id: str) -> int:
    """Delete every cached revision of `repo_id` and its partial files; returns the bytes freed."""
    folder = repo_dir(cache_dir, repo_id)
    if not folder.exists():
        return 0
    freed = sum(p.stat().st_size for p in (folder / "blobs").glob("*") if p.is_file())
    shutil.rmtree(folder)
    shutil.rmtree(Path(cache_dir) / ".locks" / folder.name, ignore_errors=True)  # only empty lock files
    return freed


def discard_download(cache_dir: Path, repo_id: str, commit: str | None) -> None:
    """Undo an unfinished download: its partial files, and the snapshot if it never completed.

    A snapshot that was already complete (the model was downloaded before) is kept.
    """
    folder = repo_dir(cache_dir, repo_id)
    blobs = folder / "blobs"
    if blobs.is_dir():
        for path in blobs.iterdir():
            if _OUR_PARTIAL.fullmatch(path.name):
                path.unlink(missing_ok=True)
    if commit is None or not snapshot_dir(cache_dir, repo_id, commit).exists():
        _remove_if_empty_repo(folder)
        return
    if snapshot_complete(cache_dir, repo_id, commit):
        return
    # Only blobs no other snapshot points at may go: huggingface_hub's strategy computes that.
    try:
        scan_cache_dir(cache_dir).delete_revisions(commit).execute()
    except (CacheNotFound, CorruptedCacheException):
        shutil.rmtree(snapshot_dir(cache_dir, repo_id, commit), ignore_errors=True)
    (folder / "trees" / f"{commit}.json").unlink(missing_ok=True)
    _remove_if_empty_repo(folder)


def _remove_if_empty_repo(folder: Path) -> None:
    snapshots = folder / "snapshots"
    if folder.exists() and not (snapshots.is_dir() and any(snapshots.iterdir())):
        shutil.rmtree(folder)
