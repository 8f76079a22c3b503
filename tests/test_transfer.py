"""Byte transfer and cache placement: corruption, interruption by Ctrl-C, unsafe names, deletion."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir, snapshot_download

from mlxui.hub import cache
from mlxui.hub.errors import BadRepoId, DownloadError
from mlxui.hub.pull import RetryPolicy, pull
from mlxui.hub.repo_id import check_repo_id, check_revision
from tests.harness.downloads import done_ranges, on_disk, only_missing_asked
from tests.harness.fixtures_hub import HubEnv

SIZE = 3 * 1024 * 1024 + 11


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transfer_model")
    (folder / "model.safetensors").write_bytes(os.urandom(SIZE))
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return folder


@pytest.fixture
def repo_id(hf_env: HubEnv, model: Path) -> str:
    repo_id = f"tx/model-{uuid.uuid4().hex[:8]}"
    hf_env.hub.add_repo(repo_id, model)
    return repo_id


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_partial(hf_env: HubEnv, repo_id: str, model: Path) -> Path:
    return cache.partial_path(hf_env.cache_dir, repo_id, sha256(model / "model.safetensors"))


async def wait_for_partial(partial: Path, size: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (partial.exists() and on_disk(partial, 10**12) >= size):
        assert time.monotonic() < deadline, "no partial file appeared"
        await asyncio.sleep(0.02)


async def test_a_corrupted_partial_file_is_detected_and_downloaded_again(
    hf_env: HubEnv, repo_id: str, model: Path
) -> None:
    partial = weights_partial(hf_env, repo_id, model)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(os.urandom(1_000_000))  # right size range, wrong bytes
    fast = RetryPolicy(backoff=0.05)
    folder = await pull(repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint, policy=fast)
    assert sha256(folder / "model.safetensors") == sha256(model / "model.safetensors")
    ranges = [r.range for r in hf_env.hub.requests if r.filename == "model.safetensors" and r.method == "GET"]
    # resumed from the bytes on disk, the checksum failed, then the file was fetched again from byte 0
    assert any(r.startswith("bytes=1000000-") for r in ranges)
    assert any(r.startswith("bytes=0-") for r in ranges)
    size = (model / "model.safetensors").stat().st_size
    assert hf_env.hub.bytes_served(repo_id) <= 2 * size


async def test_cancelling_pull_like_ctrl_c_keeps_the_partial_file_for_next_time(
    hf_env: HubEnv, repo_id: str, model: Path
) -> None:
    partial = weights_partial(hf_env, repo_id, model)
    hf_env.hub.throttle_bps = 300_000  # per connection
    task = asyncio.create_task(pull(repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint))
    await wait_for_partial(partial, 500_000)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    size = (model / "model.safetensors").stat().st_size
    kept = done_ranges(partial, size)
    assert sum(e - s for s, e in kept) >= 500_000

    hf_env.hub.throttle_bps = None
    before = len(hf_env.hub.requests)
    folder = await pull(repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint)
    assert sha256(folder / "model.safetensors") == sha256(model / "model.safetensors")
    resumed = [
        r for r in hf_env.hub.requests[before:] if r.filename == "model.safetensors" and r.method == "GET"
    ]
    assert resumed and only_missing_asked(resumed, kept, size)  # nothing on disk was asked for again


async def test_pull_refuses_when_the_disk_is_too_small(hf_env: HubEnv, repo_id: str) -> None:
    with pytest.raises(DownloadError, match=r"^Not enough disk space: needs 3\.1 MB, 2\.0 MB free\.$"):
        await pull(
            repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint, disk_free=lambda _p: 2_000_000
        )
    assert hf_env.hub.bytes_served() == 0


async def test_delete_repo_frees_the_space_and_hf_no_longer_lists_it(hf_env: HubEnv, repo_id: str) -> None:
    await pull(repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint)
    assert [m.repo_id for m in cache.cached_revisions(hf_env.cache_dir)] == [repo_id]
    freed = cache.delete_repo(hf_env.cache_dir, repo_id)
    assert freed > SIZE
    assert scan_cache_dir(hf_env.cache_dir).repos == frozenset()
    assert cache.cached_revisions(hf_env.cache_dir) == []


async def test_cancelling_a_new_commit_keeps_the_complete_older_one(
    hf_env: HubEnv, repo_id: str, tmp_path: Path
) -> None:
    from mlxui.hub.downloads import DownloadManager

    old = await pull(repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "config.json").write_text('{"model_type": "llama", "v": 2}')
    (newer / "model.safetensors").write_bytes(os.urandom(SIZE))
    hf_env.hub.add_repo(repo_id, newer)
    hf_env.hub.throttle_bps = 2_000_000
    manager = DownloadManager(hf_env.cache_dir, hf_env.endpoint, db=False)
    await manager.enqueue(repo_id)
    await wait_for_partial(weights_partial(hf_env, repo_id, newer), 300_000)
    await manager.cancel(repo_id)
    await manager.shutdown()

    assert list(hf_env.cache_dir.rglob("*.incomplete")) == []
    assert Path(snapshot_download(repo_id, cache_dir=hf_env.cache_dir, local_files_only=True)) == old
    assert sha256(old / "config.json") == sha256(
        hf_env.hub.repo(repo_id).commits[old.name]["config.json"].source
    )
    [local] = cache.cached_revisions(hf_env.cache_dir)
    assert local.path == old and local.complete


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/passwd", "a//b", "a\\b", "."])
def test_file_names_that_would_leave_the_snapshot_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="unsafe file name"):
        cache.pointer_path(tmp_path, "org/name", "a" * 40, name)


@pytest.mark.parametrize("etag", ["../../x", "abc", "a" * 40 + ".incomplete", "a/b" * 10])
def test_etags_that_are_not_plain_digests_are_refused(tmp_path: Path, etag: str) -> None:
    with pytest.raises(ValueError, match="unusable file id"):
        cache.blob_path(tmp_path, "org/name", etag)


def test_ids_and_revisions() -> None:
    assert check_repo_id("  mlx-community/Qwen3-0.6B-4bit ") == "mlx-community/Qwen3-0.6B-4bit"
    for bad in ("org/na..me", "org/-x", "org--x/y", "org/x.git", "x"):
        with pytest.raises(BadRepoId):
            check_repo_id(bad)
    assert check_revision("refs/pr/1") == "refs/pr/1"
    for bad in ("../main", "a/../b", "/main", "main/", "a b"):
        with pytest.raises(BadRepoId, match="is not a revision"):
            check_revision(bad)
