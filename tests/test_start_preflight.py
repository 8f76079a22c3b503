"""A start whose model is gone, unreadable or incomplete fails in words before anything is spawned."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlxui.config import Config
from mlxui.db import close_db, init_db
from mlxui.servers.process import ServerError
from mlxui.servers.state import ServerState
from mlxui.servers.supervisor import Supervisor
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.harness.models import as_hf_cache_repo


@pytest.fixture
async def supervisor(tmp_path: Path, hub_cache: HubCache) -> AsyncIterator[Supervisor]:
    await init_db(tmp_path / "mlxui.sqlite3")
    sup = Supervisor(Config(home=tmp_path / "home", hf_cache=tmp_path / "hf-cache"), gpu=None)
    (tmp_path / "hf-cache").mkdir()
    yield sup
    await sup.shut_down(stop_servers=True)
    await close_db()


def copy_model(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


async def failed_start(sup: Supervisor, name: str) -> str:
    with pytest.raises(ServerError) as caught:
        await sup.start(name)
    server = sup.get(name)
    assert server is not None and server.state == ServerState.FAILED
    assert server.pid is None, "nothing was spawned"
    assert server.error == str(caught.value)
    return str(caught.value)


async def test_a_deleted_model_folder_is_named_in_one_sentence(
    supervisor: Supervisor, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    folder = copy_model(model_dirs.plain, tmp_path / "my-model")
    await supervisor.profiles.create({"name": "mine", "model": str(folder)})
    shutil.rmtree(folder)
    assert await failed_start(supervisor, "mine") == (
        f"The model folder {folder} no longer exists (or has no config.json): remove the profile mine "
        "or point it at another model."
    )


async def test_a_model_deleted_from_the_cache_says_download_it_again(
    supervisor: Supervisor, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    cache = supervisor.config.hf_cache
    as_hf_cache_repo(model_dirs.plain, cache, "org/gone")
    await supervisor.profiles.create({"name": "gone", "model": "org/gone"})
    shutil.rmtree(cache / "models--org--gone")
    assert await failed_start(supervisor, "gone") == (
        "The model org/gone is not downloaded any more: download it again on the Models page."
    )


async def test_a_folder_without_weights_fails_before_spawning(
    supervisor: Supervisor, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    folder = copy_model(model_dirs.plain, tmp_path / "half")
    await supervisor.profiles.create({"name": "half", "model": str(folder)})
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    assert await failed_start(supervisor, "half") == (
        f"The model folder {folder} has no weights (*.safetensors): is the download complete?"
    )


async def test_a_gone_draft_model_is_named_too(
    supervisor: Supervisor, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    main = copy_model(model_dirs.plain, tmp_path / "main")
    draft = copy_model(model_dirs.plain, tmp_path / "draft")
    await supervisor.profiles.create({"name": "spec", "model": str(main), "draft_model": str(draft)})
    shutil.rmtree(draft)
    assert (await failed_start(supervisor, "spec")).startswith(
        f"The draft model folder {draft} no longer exists"
    )
