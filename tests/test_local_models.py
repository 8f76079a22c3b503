"""Local models: the HF cache plus added folders, with capabilities and fit read offline; deleting
is refused while a server uses the model; removing a folder never touches its files."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from mlxui.db import close_db, init_db
from mlxui.db.models import ServerProfile
from mlxui.hub import cache
from mlxui.hub.local import (
    LocalModelError,
    ModelInUse,
    add_local_folder,
    delete_cached_model,
    list_local_models,
    local_folders,
    recorded_server_using,
    remove_local_folder,
)
from tests.harness.fixtures_models import HUB_REPOS, HubCache, ModelDirs
from tests.harness.models import as_hf_cache_repo


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Path]:
    await init_db(tmp_path / "mlxui.sqlite3")
    yield tmp_path
    await close_db()


@pytest.fixture
def own_cache(model_dirs: ModelDirs, tmp_path: Path) -> Path:
    """A cache this test may change: the plain and VLM models."""
    cache_dir = tmp_path / "hf-cache"
    as_hf_cache_repo(model_dirs.plain, cache_dir, HUB_REPOS["plain"])
    as_hf_cache_repo(model_dirs.vlm, cache_dir, HUB_REPOS["vlm"])
    return cache_dir


async def test_every_cached_model_is_listed_with_its_capabilities(hub_cache: HubCache) -> None:
    entries = {e.repo_id: e for e in await list_local_models(hub_cache.cache_dir, folders=[])}
    assert set(entries) == set(hub_cache.repos.values())
    think, vlm = entries[HUB_REPOS["think_tokens"]], entries[HUB_REPOS["vlm"]]
    assert think.capabilities.thinking and not think.capabilities.vision
    assert vlm.capabilities.vision
    for entry in entries.values():
        assert entry.source == "hf_cache" and entry.complete and entry.refs == ("main",)
        assert entry.path == hub_cache.snapshots[_name(entry.repo_id)]
        assert entry.size_on_disk > 0 and entry.fit in ("fits", "tight", "wont_fit")
        assert entry.estimate.total_bytes > entry.size_on_disk
        assert entry.to_dict()["thinking"] == entry.capabilities.thinking


def _name(repo_id: str | None) -> str:
    return next(k for k, v in HUB_REPOS.items() if v == repo_id)


async def test_an_unfinished_download_is_not_a_local_model(own_cache: Path) -> None:
    (plain,) = [m for m in cache.cached_revisions(own_cache) if m.repo_id == HUB_REPOS["plain"]]
    listing = {p.name: {"size": p.stat().st_size, "blob_id": "0" * 40} for p in plain.path.iterdir()}
    listing["model-00002-of-00002.safetensors"] = {"size": 10, "blob_id": "1" * 40}
    cache.write_tree_listing(own_cache, plain.repo_id, plain.commit, listing)

    shown = await list_local_models(own_cache, folders=[])
    assert [e.repo_id for e in shown] == [HUB_REPOS["vlm"]]
    everything = await list_local_models(own_cache, folders=[], include_incomplete=True)
    assert {(e.repo_id, e.complete) for e in everything} == {
        (HUB_REPOS["plain"], False),
        (HUB_REPOS["vlm"], True),
    }


async def test_added_folders_are_kept_in_settings(db: Path, model_dirs: ModelDirs, tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    shutil.copytree(model_dirs.think_tokens, folder)
    entry = await add_local_folder(folder)
    assert entry.source == "folder" and entry.name == "my-model" and entry.capabilities.thinking
    await add_local_folder(str(folder))  # twice: still one entry
    assert await local_folders() == [folder]

    listed = await list_local_models(tmp_path / "empty-cache")
    assert [(e.key, e.capabilities.thinking) for e in listed] == [(str(folder), True)]
    assert listed[0].size_on_disk == sum(p.stat().st_size for p in folder.iterdir())

    with pytest.raises(ModelInUse, match="server 'srv'"):
        await remove_local_folder(folder, in_use=lambda name, paths: "srv" if paths == [folder] else None)
    await remove_local_folder(folder)
    assert await local_folders() == [] and await list_local_models(tmp_path / "empty-cache") == []
    assert (folder / "model.safetensors").is_file()  # forgetting a folder never deletes it


async def test_a_vanished_folder_is_listed_with_a_problem(
    db: Path, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    folder = tmp_path / "temporary"
    shutil.copytree(model_dirs.plain, folder)
    await add_local_folder(folder)
    shutil.rmtree(folder)
    (entry,) = await list_local_models(tmp_path / "empty-cache")
    assert entry.problem == f"{folder} no longer exists" and entry.fit is None and not entry.complete
    await remove_local_folder(folder)  # and it can still be removed
    assert await local_folders() == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "is not a folder"),
        (lambda tmp: tmp, "has no config.json"),
        (lambda tmp: Path("relative/path"), "full path"),
    ],
)
async def test_unusable_folders_are_refused(db: Path, make, message: str) -> None:
    with pytest.raises(LocalModelError, match=message):
        await add_local_folder(make(db))
    assert await local_folders() == []


async def test_delete_is_refused_while_a_server_uses_the_model(own_cache: Path) -> None:
    repo_id = HUB_REPOS["plain"]
    seen: list[tuple[str, list[Path]]] = []

    def in_use(name: str, paths: list[Path]) -> str | None:
        seen.append((name, paths))
        return "chat-server"

    with pytest.raises(ModelInUse, match="in use by the server 'chat-server': stop the server first"):
        await delete_cached_model(own_cache, repo_id, in_use=in_use)
    (snapshot,) = seen[0][1]
    assert seen[0][0] == repo_id and snapshot.is_dir()  # still there

    async def nobody(name: str, paths: list[Path]) -> str | None:
        return None

    freed = await delete_cached_model(own_cache, repo_id, in_use=nobody)
    assert freed > 0 and not cache.repo_dir(own_cache, repo_id).exists()
    assert [e.repo_id for e in await list_local_models(own_cache, folders=[])] == [HUB_REPOS["vlm"]]


async def test_without_the_app_a_recorded_live_server_blocks_the_delete(db: Path, own_cache: Path) -> None:
    repo_id = HUB_REPOS["vlm"]
    me = psutil.Process()
    await ServerProfile.create(name="vlm-srv", model=repo_id, run_pid=me.pid, run_started_at=me.create_time())
    await ServerProfile.create(name="gone", model=HUB_REPOS["plain"], run_pid=me.pid, run_started_at=1.0)
    with pytest.raises(ModelInUse, match="'vlm-srv'"):
        await delete_cached_model(own_cache, repo_id, in_use=recorded_server_using)
    # a pid now used by another process (start time differs) does not block
    assert await delete_cached_model(own_cache, HUB_REPOS["plain"], in_use=recorded_server_using) > 0
    snapshot = cache.repo_dir(own_cache, repo_id) / "snapshots"
    (path,) = snapshot.iterdir()
    await ServerProfile.filter(name="vlm-srv").update(model=str(path))  # started with the folder
    with pytest.raises(ModelInUse):
        await delete_cached_model(own_cache, repo_id, in_use=recorded_server_using)


async def test_deleting_what_is_not_there(own_cache: Path) -> None:
    with pytest.raises(LocalModelError, match="is not downloaded"):
        await delete_cached_model(own_cache, "nobody/nothing")
    with pytest.raises(LocalModelError, match="not a model id"):
        await delete_cached_model(own_cache, "../../etc/passwd")
    assert len(await list_local_models(own_cache, folders=[])) == 2
