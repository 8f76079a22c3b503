"""Download faults against the fake Hub: dropped and stalled connections, Hub errors, an
unreachable Hub, a full disk and malformed ids. Each ends as something the user can act on: an
automatic retry that continues from the bytes on disk, or a failed download with a sentence.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from nicegui import binding

from mlxui.db.models import Download
from mlxui.hub import cache
from mlxui.hub.downloads import DownloadManager
from mlxui.hub.errors import BadRepoId
from tests.harness.downloads import (
    MEDIUM,
    Recorder,
    asked,
    assert_same_files,
    finished,
    weight_gets,
    weights_partial,
)
from tests.harness.fakehub import VALID_TOKEN
from tests.harness.fixtures_hub import HubEnv

# Fixtures: models, add_repo, download_db, manager_factory (tests/harness/fixtures_downloads.py).


async def test_dropped_connections_are_retried_from_the_bytes_on_disk(
    manager_factory: Callable[..., DownloadManager],
    add_repo: Callable[..., str],
    hf_env: HubEnv,
    models: dict,
) -> None:
    repo_id = add_repo("medium")
    hf_env.hub.drop_after_bytes, hf_env.hub.drop_times = 1_000_000, 2  # per response
    manager = manager_factory(backoff=0.2)
    await manager.settings.save(max_connections=2)  # ranges of 1-3 MB: each is long enough to be cut
    st = await manager.enqueue(repo_id)
    notes: list[str] = []
    recorder = Recorder()
    binding.bind_from(recorder, "value", st, "note", backward=lambda v: notes.append(v) or v)
    try:
        st = await finished(manager, repo_id)
    finally:
        binding.remove([recorder])
    assert st.state == "done", st.error
    gets = weight_gets(hf_env.hub, repo_id)
    dropped = [g for g in gets if g.bytes_sent < asked(g, MEDIUM)[1] - asked(g, MEDIUM)[0]]
    assert len(dropped) == 2  # both drops happened ...
    for cut in dropped:  # ... and each was continued from where its bytes ended
        assert any(asked(g, MEDIUM)[0] == asked(cut, MEDIUM)[0] + cut.bytes_sent for g in gets)
    assert sum(g.bytes_sent for g in gets) == MEDIUM  # retries continued, nothing fetched twice
    assert_same_files(cache.snapshot_dir(hf_env.cache_dir, repo_id, st.commit), models["medium"])
    assert any(n.startswith("The connection to the Hub dropped. Retrying in 0.2 s") for n in notes)
    assert notes[-1] == "" and st.note == ""


async def test_a_stalled_transfer_is_retried_then_fails_with_the_reason(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv
) -> None:
    repo_id = add_repo("small")
    hf_env.hub.stall_after_bytes, hf_env.hub.stall_seconds = 0, 3.0
    manager = manager_factory(stall_timeout=0.4, retries=2)
    started = time.monotonic()
    await manager.enqueue(repo_id)
    st = await finished(manager, repo_id)
    assert st.state == "failed"
    assert "stalled" in st.error and "0.4 s" in st.error and "3 attempts" in st.error
    assert time.monotonic() - started < 4
    row = await Download.get(repo_id=repo_id)
    assert (row.state, row.error) == ("failed", st.error)


async def test_a_gated_repo_asks_for_a_token_and_works_once_there_is_one(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv
) -> None:
    repo_id = add_repo("small", gated=True)
    token: list[str | None] = [None]
    manager = manager_factory(token_provider=lambda: token[0])
    await manager.enqueue(repo_id)
    st = await finished(manager, repo_id)
    assert st.state == "failed"
    assert "gated or private" in st.error and "token" in st.error and "Settings" in st.error

    token[0] = VALID_TOKEN  # the user adds a token in Settings, then presses Retry
    await manager.retry(repo_id)
    assert (await finished(manager, repo_id)).state == "done"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "gated or private"),
        (403, "gated or private"),
        (404, "No model named {repo} on the Hub"),
        (500, "The Hub answered 500"),
    ],
)
async def test_hub_errors_become_sentences(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv,
    status: int, expected: str,
) -> None:  # fmt: skip
    repo_id = add_repo("small")
    hf_env.hub.status_overrides[repo_id] = status
    manager = manager_factory(retries=1)
    await manager.enqueue(repo_id)
    st = await finished(manager, repo_id)
    assert st.state == "failed" and expected.format(repo=repo_id) in st.error
    assert hf_env.hub.bytes_served(repo_id) == 0


async def test_an_unreachable_hub_fails_with_a_clear_message(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv
) -> None:
    repo_id = add_repo("small")
    hf_env.hub.offline = True
    manager = manager_factory(retries=1)
    await manager.enqueue(repo_id)
    st = await finished(manager, repo_id)
    assert st.state == "failed" and "Cannot reach the Hub" in st.error


async def test_not_enough_disk_fails_clearly_and_keeps_the_partial_file(
    manager_factory: Callable[..., DownloadManager],
    add_repo: Callable[..., str],
    hf_env: HubEnv,
    models: dict,
) -> None:
    repo_id = add_repo("medium")
    # What an earlier interrupted run left: the first 2 MB of the weights.
    partial = weights_partial(hf_env, repo_id, models["medium"])
    partial.parent.mkdir(parents=True)
    partial.write_bytes((models["medium"] / "model.safetensors").read_bytes()[:2_000_000])
    free = [1_000_000]
    manager = manager_factory(disk_free=lambda _path: free[0])
    await manager.enqueue(repo_id)
    st = await finished(manager, repo_id)
    assert st.state == "failed"
    assert st.error.startswith("Not enough disk space: needs 4.") and st.error.endswith("1.0 MB free.")
    assert partial.stat().st_size == 2_000_000 and hf_env.hub.bytes_served(repo_id) == 0

    free[0] = 10**12
    await manager.retry(repo_id)
    st = await finished(manager, repo_id)
    assert st.state == "done"
    gets = weight_gets(hf_env.hub, repo_id)
    assert min(asked(g, MEDIUM)[0] for g in gets) == 2_000_000  # continued after the 2 MB on disk
    assert sum(g.bytes_sent for g in gets) == MEDIUM - 2_000_000
    assert_same_files(cache.snapshot_dir(hf_env.cache_dir, repo_id, st.commit), models["medium"])


@pytest.mark.parametrize(
    "bad",
    [
        "../etc/passwd",
        "org/../x",
        "a/b/c",
        "org/name with space",
        "",
        "org/",
        "/x",
        "a" * 128 + "/" + "b" * 127,
    ],
)
async def test_malformed_repo_ids_are_refused_before_anything(
    manager_factory: Callable[..., DownloadManager], hf_env: HubEnv, bad: str
) -> None:
    manager = manager_factory()
    with pytest.raises(BadRepoId, match="is not a model id"):
        await manager.enqueue(bad)
    assert manager.downloads == {} and hf_env.hub.requests == []
    assert list(hf_env.cache_dir.iterdir()) == []
