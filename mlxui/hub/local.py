"""Models on this machine: the Hugging Face cache plus folders the user added by hand.

Each entry carries its size on disk, capabilities (read from its files: no network) and memory
fit, so the Local tab and `mlxui models list` work fully offline. The added folders are a setting
(`models.local_folders`); removing one forgets it and never touches the user's files. Deleting a
cached model is refused while a server uses it (the caller's `in_use` callback says so).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psutil

from mlxui.hub import cache
from mlxui.hub.capabilities import Capabilities, read_local_capabilities
from mlxui.hub.errors import BadRepoId
from mlxui.hub.memory import Fit, MemoryEstimate, fit_on_this_machine
from mlxui.hub.repo_id import check_repo_id

if TYPE_CHECKING:
    from mlxui.hub.downloads import DownloadManager

LOCAL_FOLDERS_KEY = "models.local_folders"

# in_use(name, paths) -> the name of a server using the model (repo id or folder, and the
# folders a server may have been given instead), or None. May be async.
InUse = Callable[[str, list[Path]], str | None | Awaitable[str | None]]

log = logging.getLogger(__name__)


class LocalModelError(Exception):
    """A local-model action that cannot be done, as one sentence for the user (`message`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelInUse(LocalModelError):
    """A server runs this model: stop it first."""


@dataclass
class LocalEntry:
    """One model on disk, as the Local tab shows it."""

    key: str  # stable id: "repo_id@commit" for the cache, the folder path for added folders
    name: str  # repo id, or the folder's name
    path: Path  # what `mlx_lm.server --model` takes
    source: Literal["hf_cache", "folder"]
    repo_id: str | None  # None for an added folder
    commit: str | None
    refs: tuple[str, ...]  # e.g. ("main",)
    size_on_disk: int
    complete: bool  # False while a download is still filling this snapshot
    last_modified: float  # unix time
    capabilities: Capabilities
    estimate: MemoryEstimate
    fit: Fit | None  # None: the size is unknown
    problem: str | None = None  # e.g. the folder is gone

    def to_dict(self) -> dict[str, Any]:
        caps = {k: v for k, v in self.capabilities.to_dict().items() if k != "repo_id"}
        return {
            "repo_id": self.repo_id, "name": self.name, "key": self.key, "path": str(self.path),
            "source": self.source, "commit": self.commit, "refs": list(self.refs),
            "size_on_disk": self.size_on_disk, "complete": self.complete,
            "last_modified": self.last_modified, "problem": self.problem, **caps,
            "badges": self.capabilities.badges(), "fit": self.fit,
            "memory": {
                "total_bytes": self.estimate.total_bytes, "weights_bytes": self.estimate.weights_bytes,
                "kv_cache_bytes": self.estimate.kv_cache_bytes, "context_tokens": self.estimate.context_tokens,
            },
        }  # fmt: skip


# ----- listing ------------------------------------------------------------------------------------
async def list_local_models(
    cache_dir: Path, *, folders: list[Path] | None = None, include_incomplete: bool = False
) -> list[LocalEntry]:
    """The models on this machine: cached ones (newest first), then added folders. `folders=None`
    reads the setting (needs the database); pass a list (e.g. []) when no database is open.
    Reading each model's small files happens in a worker thread."""
    if folders is None:
        folders = await local_folders()
    return await asyncio.to_thread(_scan, cache_dir, folders, include_incomplete)


def _scan(cache_dir: Path, folders: list[Path], include_incomplete: bool) -> list[LocalEntry]:
    entries = []
    for model in cache.cached_revisions(Path(cache_dir)):
        if not model.complete and not include_incomplete:
            continue
        caps = read_local_capabilities(model.path, repo_id=model.repo_id)
        estimate, verdict = fit_on_this_machine(caps)
        entries.append(
            LocalEntry(
                key=f"{model.repo_id}@{model.commit}",
                name=model.repo_id,
                path=model.path,
                source="hf_cache",
                repo_id=model.repo_id,
                commit=model.commit,
                refs=model.refs,
                size_on_disk=model.size_on_disk,
                complete=model.complete,
                last_modified=model.last_modified,
                capabilities=caps,
                estimate=estimate,
                fit=verdict,
            )  # fmt: skip
        )
    entries.extend(folder_entry(folder) for folder in folders)
    return entries


def folder_entry(folder: Path) -> LocalEntry:
    """The entry of an added folder; one that is gone is listed with a `problem` (so it can be removed)."""
    folder = Path(folder)
    problem = None if folder.is_dir() else f"{folder} no longer exists"
    caps = Capabilities() if problem else read_local_capabilities(folder)
    estimate, verdict = fit_on_this_machine(caps)
    try:
        modified = folder.stat().st_mtime
    except OSError:
        modified = 0.0
    return LocalEntry(
        key=str(folder), name=folder.name, path=folder, source="folder", repo_id=None, commit=None,
        refs=(), size_on_disk=caps.size_bytes or 0, complete=problem is None, last_modified=modified,
        capabilities=caps, estimate=estimate, fit=None if problem else verdict, problem=problem,
    )  # fmt: skip


# ----- added folders ------------------------------------------------------------------------------
async def local_folders() -> list[Path]:
    """The folders the user added, in the order added."""
    from mlxui.db import get_setting

    stored = await get_setting(LOCAL_FOLDERS_KEY, [])
    return [Path(p) for p in stored if isinstance(p, str)] if isinstance(stored, list) else []


async def add_local_folder(folder: Path | str) -> LocalEntry:
    """Add a model folder (it must hold a config.json); raises LocalModelError. Adding it twice is a no-op."""
    path = Path(folder).expanduser()
    if not path.is_absolute():
        raise LocalModelError(f"Give the full path of the folder, not {str(folder)!r}.")
    path = path.resolve()
    if not path.is_dir():
        raise LocalModelError(f"{path} is not a folder.")
    if not (path / "config.json").is_file():
        raise LocalModelError(f"{path} has no config.json: it does not look like a model folder.")
    if not any(path.glob("*.safetensors")):
        raise LocalModelError(f"{path} has no weights (*.safetensors): MLX servers load safetensors files.")
    from mlxui.db import set_setting

    folders = await local_folders()
    if path not in folders:
        await set_setting(LOCAL_FOLDERS_KEY, [str(p) for p in [*folders, path]])
    return await asyncio.to_thread(folder_entry, path)


async def remove_local_folder(folder: Path | str, *, in_use: InUse | None = None) -> None:
    """Forget an added folder (its files stay where they are); refused while a server uses it."""
    from mlxui.db import set_setting

    path = Path(folder)
    folders = await local_folders()
    if path not in folders:
        raise LocalModelError(f"{path} is not in the list of local folders.")
    await _refuse_if_in_use(str(path), [path], in_use)
    await set_setting(LOCAL_FOLDERS_KEY, [str(p) for p in folders if p != path])


# ----- deleting from the cache --------------------------------------------------------------------
async def delete_cached_model(
    cache_dir: Path,
    repo_id: str,
    *,
    in_use: InUse | None = None,
    downloads: DownloadManager | None = None,
) -> int:
    """Delete every cached revision of `repo_id` (and its partial files); returns the bytes freed.

    Raises LocalModelError when it is not in the cache, ModelInUse while a server uses it. With
    the app's `downloads` manager, a download of it is stopped and forgotten first.
    """
    try:
        repo_id = check_repo_id(repo_id)
    except BadRepoId as exc:
        raise LocalModelError(exc.message) from exc
    folder = cache.repo_dir(Path(cache_dir), repo_id)
    if not folder.exists():
        raise LocalModelError(f"{repo_id} is not downloaded.")
    snapshots = folder / "snapshots"
    paths = sorted(snapshots.iterdir()) if snapshots.is_dir() else []
    await _refuse_if_in_use(repo_id, paths, in_use)
    if downloads is not None:
        return await downloads.delete_model(repo_id)
    return await asyncio.to_thread(cache.delete_repo, Path(cache_dir), repo_id)


async def _refuse_if_in_use(name: str, paths: list[Path], in_use: InUse | None) -> None:
    if in_use is None:
        return
    user = in_use(name, paths)
    if inspect.isawaitable(user):
        user = await user
    if user:
        raise ModelInUse(f"{name} is in use by the server {user!r}: stop the server first, then delete it.")


async def recorded_server_using(name: str, paths: list[Path]) -> str | None:
    """An `InUse` for when the app is not running (the CLI): the name of a server profile whose
    recorded process (run_pid) is still alive and serves this model, from the database."""
    from mlxui.db.models import ServerProfile

    for profile in await ServerProfile.filter(run_pid__isnull=False):
        try:
            proc = psutil.Process(profile.run_pid)
            if profile.run_started_at is not None and abs(proc.create_time() - profile.run_started_at) > 1:
                continue  # the pid was reused by another process
        except psutil.Error as exc:
            log.debug("recorded server %s is gone: %s", profile.name, exc)
            continue
        model = profile.model
        if model == name or any(Path(model) == p or p in Path(model).parents for p in paths):
            return profile.name
    return None
