"""Model details from the fake Hub (only the small files, cached in SQLite per commit) and from
folders on disk, with the built test models as the Hub's repositories."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlxui.db import close_db, init_db
from mlxui.hub.cache import cached_revisions
from mlxui.hub.errors import BadRepoId, GatedRepo, HubUnavailable, RepoNotFound
from mlxui.hub.model_info import (
    cached_capabilities,
    get_capabilities,
    get_model_details,
    read_local_details,
)
from tests.harness.fakehub import FakeHub
from tests.harness.fixtures_hub import HubEnv
from tests.harness.fixtures_models import HubCache, ModelDirs


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "mlxui.sqlite3"
    await init_db(path)
    yield path
    await close_db()


def serve(hub: FakeHub, folder: Path, **options: object) -> str:
    repo_id = f"info/{folder.name}-{uuid.uuid4().hex[:8]}"
    hub.add_repo(repo_id, folder, **options)
    return repo_id


def fetched_files(hub: FakeHub) -> list[str]:
    return sorted(r.filename for r in hub.requests if r.filename)


async def test_capabilities_of_each_built_model(hf_env: HubEnv, model_dirs: ModelDirs, db: Path) -> None:
    hub = hf_env.hub
    think = await get_capabilities(serve(hub, model_dirs.think_tokens))
    vlm = await get_capabilities(serve(hub, model_dirs.vlm))
    plain = await get_capabilities(serve(hub, model_dirs.plain))
    llama = await get_capabilities(serve(hub, model_dirs.tiny_llama))

    assert think.thinking and not think.vision
    assert vlm.vision and not vlm.thinking and "Vision" in vlm.badges()
    assert not plain.thinking and not plain.vision
    assert llama.architecture == "LlamaForCausalLM" and llama.model_type == "llama"
    for caps, folder in ((think, model_dirs.think_tokens), (llama, model_dirs.tiny_llama)):
        assert caps.size_bytes == sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        assert caps.parameters and not caps.parameters_estimated  # from the Hub's safetensors counts
        assert caps.context_length and caps.num_hidden_layers


async def test_only_small_files_are_fetched_and_the_hf_cache_stays_clean(
    hf_env: HubEnv, model_dirs: ModelDirs, db: Path
) -> None:
    repo_id = serve(hf_env.hub, model_dirs.vlm)
    hf_env.hub.requests.clear()
    details = await get_model_details(repo_id)

    fetched = fetched_files(hf_env.hub)
    assert "config.json" in fetched and "preprocessor_config.json" in fetched
    assert not any(name.endswith((".safetensors", "tokenizer.json")) for name in fetched)
    assert sorted(f.path for f in details.files) == sorted(p.name for p in model_dirs.vlm.iterdir())
    weights = next(f for f in details.files if f.path == "model.safetensors")
    assert weights.size == (model_dirs.vlm / "model.safetensors").stat().st_size
    # a card's small files must not look like a half-downloaded model in the Local list
    assert cached_revisions(hf_env.cache_dir) == []


async def test_second_look_asks_the_hub_nothing(hf_env: HubEnv, model_dirs: ModelDirs, db: Path) -> None:
    hub = hf_env.hub
    repo_id = serve(hub, model_dirs.think_tokens)
    first = await get_model_details(repo_id)
    assert not first.from_cache and hub.requests

    hub.requests.clear()
    again = await get_model_details(repo_id, sha=first.sha)
    without_sha = await get_model_details(repo_id)
    assert hub.requests == []
    assert again.from_cache and without_sha.from_cache
    assert again.capabilities == first.capabilities and again.files == first.files
    assert (await cached_capabilities([repo_id, "info/never-seen"])) == {repo_id: first.capabilities}


async def test_a_new_commit_is_fetched_again(
    hf_env: HubEnv, model_dirs: ModelDirs, db: Path, tmp_path: Path
) -> None:
    hub = hf_env.hub
    repo_id = serve(hub, model_dirs.plain)
    old = await get_model_details(repo_id)
    assert not old.capabilities.thinking
    new_sha = hub.add_repo(repo_id, model_dirs.think_tokens)  # the repo now holds another model
    hub.requests.clear()
    new = await get_model_details(repo_id, sha=new_sha)
    assert new.sha == new_sha != old.sha
    assert new.capabilities.thinking and not new.from_cache
    assert "config.json" in fetched_files(hub)


async def test_model_card_without_front_matter(
    hf_env: HubEnv, model_dirs: ModelDirs, db: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "with-card"
    shutil.copytree(model_dirs.plain, folder)
    (folder / "README.md").write_text("---\nlicense: mit\ntags: [mlx]\n---\n# Scripted\n\nSays hello.\n")
    details = await get_model_details(serve(hf_env.hub, folder))
    assert details.readme is not None and details.readme.startswith("---")
    assert details.readme_markdown == "# Scripted\n\nSays hello.\n"
    cached = await get_model_details(details.repo_id or "")
    assert cached.from_cache and cached.readme_markdown == details.readme_markdown


async def test_a_card_and_its_drawer_share_one_fetch(hf_env: HubEnv, model_dirs: ModelDirs, db: Path) -> None:
    repo_id = serve(hf_env.hub, model_dirs.plain)
    hf_env.hub.requests.clear()
    a, b, c = await asyncio.gather(*(get_model_details(repo_id) for _ in range(3)))
    assert a.capabilities == b.capabilities == c.capabilities
    assert sum(1 for r in hf_env.hub.requests if r.path == f"/api/models/{repo_id}") == 1
    assert set(await cached_capabilities([repo_id])) == {repo_id}


async def test_missing_repo(hf_env: HubEnv, db: Path) -> None:
    with pytest.raises(RepoNotFound, match="No public model named info/does-not-exist"):
        await get_model_details("info/does-not-exist")
    with pytest.raises(RepoNotFound, match="No model named info/does-not-exist on the Hub"):
        await get_model_details("info/does-not-exist", token=hf_env.token)


async def test_gated_repo_asks_for_a_token(hf_env: HubEnv, model_dirs: ModelDirs, db: Path) -> None:
    repo_id = serve(hf_env.hub, model_dirs.plain, gated=True)
    with pytest.raises(GatedRepo) as caught:
        await get_model_details(repo_id)
    assert "HF_TOKEN" in caught.value.message and "Settings" in caught.value.message
    details = await get_model_details(repo_id, token=hf_env.token)
    assert details.gated and details.capabilities.architecture == "LlamaForCausalLM"


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "org/name/extra", "justaname", "org/..", "a/" + "b" * 97, "org/na me", ""]
)
async def test_bad_repo_ids_are_refused_before_asking(hf_env: HubEnv, bad: str) -> None:
    with pytest.raises(BadRepoId, match="not a model id"):
        await get_model_details(bad, use_db=False)
    assert hf_env.hub.requests == []


async def test_offline_hub_fails_fast(hf_env: HubEnv, model_dirs: ModelDirs) -> None:
    repo_id = serve(hf_env.hub, model_dirs.plain)
    hf_env.hub.offline = True
    started = time.monotonic()
    with pytest.raises(HubUnavailable, match="Cannot connect"):
        await get_model_details(repo_id, use_db=False)
    assert time.monotonic() - started < 5


def test_local_snapshot_details(hub_cache: HubCache) -> None:
    details = read_local_details(hub_cache.snapshots["vlm"])
    assert details.source == "local"
    assert details.repo_id == hub_cache.repos["vlm"]  # read from the cache layout
    assert details.sha == hub_cache.snapshots["vlm"].name
    assert details.capabilities.vision and not details.capabilities.parameters_estimated
    assert "model.safetensors" in {f.path for f in details.files}
    data = details.to_dict()
    for key in ("repo_id", "architecture", "model_type", "parameters", "quant_bits", "context_length"):
        assert key in data
    assert data["vision"] is True and data["size_bytes"] > 0
    assert data["fit"] in ("fits", "tight", "wont_fit") and data["memory"]["total_bytes"] > 0


def test_local_folder_without_repo_id(model_dirs: ModelDirs) -> None:
    details = read_local_details(model_dirs.think_tokens)
    assert details.repo_id is None and details.path == model_dirs.think_tokens
    assert details.capabilities.thinking
