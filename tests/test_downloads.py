"""The download manager against the fake Hub: real huggingface_hub, real files, real SQLite.

What a user would notice: the model arrives intact and every HF tool sees it, progress only goes
forward, pause/cancel/crash/restart lose nothing and fetch nothing twice, and every failure ends
as a sentence that says what to do.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir, snapshot_download
from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError
from nicegui import binding

from mlxui.db.models import Download
from mlxui.hub import cache
from mlxui.hub.downloads import DownloadManager
from mlxui.hub.pull import pull
from tests.harness.downloads import (
    MEDIUM,
    ROOT,
    SMALL,
    Recorder,
    assert_same_files,
    done_ranges,
    finished,
    on_disk,
    only_missing_asked,
    partials,
    until,
    weight_gets,
    weights_partial,
)
from tests.harness.fixtures_hub import HubEnv

# Fixtures: models, add_repo, download_db, manager_factory (tests/harness/fixtures_downloads.py).


async def test_download_arrives_intact_and_every_hf_tool_sees_it(
    manager_factory: Callable[..., DownloadManager],
    add_repo: Callable[..., str],
    hf_env: HubEnv,
    models: dict,
) -> None:
    repo_id = add_repo("big")
    hf_env.hub.throttle_bps = 2_000_000  # per connection: a download of a few seconds, as users see
    manager = manager_factory(publish_interval=0.0)
    finished_hook: list[str] = []
    manager.on_done(lambda st: finished_hook.append(st.repo_id))
    membership: list[list[str]] = []
    manager.on_change(lambda: membership.append(list(manager.downloads)))

    st = await manager.enqueue(repo_id)
    seen: list[int] = []
    recorder = Recorder()
    binding.bind_from(recorder, "value", st, "bytes_done", backward=lambda v: seen.append(v) or v)
    try:
        st = await finished(manager, repo_id)
    finally:
        binding.remove([recorder])

    assert st.state == "done" and st.error is None
    total = sum(p.stat().st_size for p in models["big"].rglob("*") if p.is_file())
    assert st.bytes_total == total and st.bytes_done == total and st.fraction == 1.0
    assert len(seen) > 10 and seen == sorted(seen) and seen[-1] == total  # only forward, ends at 100 %
    assert finished_hook == [repo_id] and membership == [[repo_id]]
    assert hf_env.hub.bytes_served(repo_id) == total  # every byte exactly once

    info = scan_cache_dir(hf_env.cache_dir)
    [repo] = [r for r in info.repos if r.repo_id == repo_id]
    [revision] = repo.revisions
    assert revision.commit_hash == st.commit and revision.refs == {"main"} and not info.warnings
    assert repo.size_on_disk == total and not info.incomplete_files  # one copy of each byte, no leftovers
    folder = Path(snapshot_download(repo_id, cache_dir=hf_env.cache_dir, local_files_only=True))
    assert folder == revision.snapshot_path
    assert_same_files(folder, models["big"])
    assert os.readlink(folder / "model.safetensors").startswith("../../blobs/")  # relative, like HF's
    [local] = [m for m in cache.cached_revisions(hf_env.cache_dir) if m.repo_id == repo_id]
    assert local.complete and local.path == folder and local.refs == ("main",)

    row = await Download.get(repo_id=repo_id)
    assert (row.state, row.bytes_done, row.bytes_total, row.commit) == ("done", total, total, st.commit)


async def test_pull_reports_forward_progress_and_skips_what_is_already_there(
    add_repo: Callable[..., str], hf_env: HubEnv, models: dict
) -> None:
    repo_id = add_repo("medium")
    events: list[tuple[int, int, str, int]] = []
    hf_env.hub.throttle_bps = 2_000_000  # per connection: the download lasts long enough to be seen
    folder = await pull(
        repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint,
        on_progress=lambda p: events.append((p.bytes_done, p.bytes_total, p.current_file, p.files_done)),
    )  # fmt: skip
    hf_env.hub.throttle_bps = None
    assert_same_files(folder, models["medium"])
    done = [e[0] for e in events]
    assert done == sorted(done) and done[-1] == events[-1][1] > MEDIUM
    files_done = [e[3] for e in events]
    assert files_done == sorted(files_done) and files_done[-1] == 4  # counted up, file by file
    assert "model.safetensors" in {e[2] for e in events}  # the file being fetched is named
    assert {e[2] for e in events} <= {
        "",
        "model.safetensors",
        "config.json",
        "tokenizer_config.json",
        "sub/extra.json",
    }

    served = hf_env.hub.bytes_served(repo_id)
    assert await pull(repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint) == folder
    assert hf_env.hub.bytes_served(repo_id) == served  # nothing fetched twice


async def test_pause_then_resume_fetches_no_byte_twice(
    manager_factory: Callable[..., DownloadManager],
    add_repo: Callable[..., str],
    hf_env: HubEnv,
    models: dict,
) -> None:
    repo_id = add_repo("medium")
    partial = weights_partial(hf_env, repo_id, models["medium"])
    hf_env.hub.throttle_bps = 4_000_000
    manager = manager_factory()
    await manager.enqueue(repo_id)
    await until(lambda: on_disk(partial, MEDIUM) > 1_000_000, what="a partial file")

    st = await manager.pause(repo_id)
    assert st.state == "paused" and st.speed_bps == 0
    kept = done_ranges(partial, MEDIUM)
    await asyncio.sleep(0.3)
    assert done_ranges(partial, MEDIUM) == kept  # really stopped, and the partial file stays
    with pytest.raises(
        (LocalEntryNotFoundError, IncompleteSnapshotError)
    ):  # HF tools don't take half a model
        snapshot_download(repo_id, cache_dir=hf_env.cache_dir, local_files_only=True)
    assert not next(m for m in cache.cached_revisions(hf_env.cache_dir) if m.repo_id == repo_id).complete
    assert (await Download.get(repo_id=repo_id)).state == "paused"

    hf_env.hub.throttle_bps = None
    before = len(weight_gets(hf_env.hub, repo_id))
    await manager.resume(repo_id)
    st = await finished(manager, repo_id)
    assert st.state == "done"
    resumed = weight_gets(hf_env.hub, repo_id)[before:]
    assert resumed and only_missing_asked(resumed, kept, MEDIUM)
    assert sum(g.bytes_sent for g in resumed) == MEDIUM - sum(e - s for s, e in kept)
    assert_same_files(cache.snapshot_dir(hf_env.cache_dir, repo_id, st.commit), models["medium"])


async def test_cancel_deletes_partial_files_and_the_unfinished_model(
    manager_factory: Callable[..., DownloadManager],
    add_repo: Callable[..., str],
    hf_env: HubEnv,
    models: dict,
) -> None:
    repo_id = add_repo("medium")
    partial = weights_partial(hf_env, repo_id, models["medium"])
    hf_env.hub.throttle_bps = 4_000_000
    manager = manager_factory()
    await manager.enqueue(repo_id)
    await until(lambda: on_disk(partial, MEDIUM) > 500_000, what="a partial file")

    st = await manager.cancel(repo_id)
    assert st.state == "cancelled" and st.bytes_done == 0
    assert partials(hf_env.cache_dir) == []
    assert not cache.repo_dir(hf_env.cache_dir, repo_id).exists()  # config.json etc. went too
    assert all(r.repo_id != repo_id for r in scan_cache_dir(hf_env.cache_dir).repos)
    assert not await Download.filter(repo_id=repo_id).exists()


async def test_resume_after_kill_9_refetches_nothing(
    add_repo: Callable[..., str], hf_env: HubEnv, models: dict
) -> None:
    repo_id = add_repo("medium")
    partial = weights_partial(hf_env, repo_id, models["medium"])
    hf_env.hub.throttle_bps = 3_000_000
    script = (
        "import asyncio, sys\nfrom pathlib import Path\nfrom mlxui.hub.pull import pull\n"
        "asyncio.run(pull(sys.argv[1], cache_dir=Path(sys.argv[2]), endpoint=sys.argv[3]))\n"
    )
    args = [sys.executable, "-c", script, repo_id, str(hf_env.cache_dir), hf_env.endpoint]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await until(lambda: on_disk(partial, MEDIUM) > 2_000_000 or proc.poll() is not None, 30)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    finally:
        proc.kill()  # SIGKILL: no cleanup code of ours runs
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    kept = done_ranges(partial, MEDIUM)
    kept_bytes = sum(e - s for s, e in kept)

    hf_env.hub.throttle_bps = None
    before = len(weight_gets(hf_env.hub, repo_id))
    folder = await pull(repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint)
    assert_same_files(folder, models["medium"])
    resumed = weight_gets(hf_env.hub, repo_id)[before:]
    assert only_missing_asked(resumed, kept, MEDIUM)  # nothing the map said was on disk came again
    assert sum(g.bytes_sent for g in resumed) == MEDIUM - kept_bytes
    assert partials(hf_env.cache_dir) == []


async def test_speed_and_time_left_are_shown_while_downloading(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv
) -> None:
    repo_id = add_repo("medium")
    hf_env.hub.throttle_bps = 1_000_000  # per connection, as content networks cap them
    manager = manager_factory()
    await manager.settings.save(max_connections=2)
    st = await manager.enqueue(repo_id)
    await until(lambda: st.speed_bps > 0, timeout=10, what="a speed")
    assert 1_500_000 < st.speed_bps < 3_000_000  # two connections at 1 MB/s each
    assert st.eta_s is not None and 0 < st.eta_s < 10
    assert st.connections == 2
    assert st.current_file == "model.safetensors" and 0 < st.fraction < 1
    hf_env.hub.throttle_bps = None
    st = await finished(manager, repo_id)
    assert (st.state, st.speed_bps, st.eta_s) == ("done", 0.0, None)


async def test_concurrency_two_runs_two_downloads_at_once_and_one_queues_the_rest(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv
) -> None:
    a, b, c = add_repo("small"), add_repo("small"), add_repo("small")
    hf_env.hub.throttle_bps = 1_000_000
    manager = manager_factory(concurrency=2)
    states = [await manager.enqueue(r) for r in (a, b, c)]

    def running_together() -> bool:
        return [s.state for s in states] == ["downloading", "downloading", "queued"] and all(
            s.bytes_done > 0 for s in states[:2]
        )

    await until(running_together, what="two downloads running while the third waits")
    hf_env.hub.throttle_bps = None
    for r in (a, b, c):
        assert (await finished(manager, r)).state == "done"


async def test_restore_after_restart_continues_running_and_queued_downloads(
    manager_factory: Callable[..., DownloadManager],
    add_repo: Callable[..., str],
    hf_env: HubEnv,
    models: dict,
) -> None:
    running, queued, paused = add_repo("medium"), add_repo("small"), add_repo("small")
    partial = weights_partial(hf_env, running, models["medium"])
    hf_env.hub.throttle_bps = 4_000_000
    first = manager_factory()
    await first.enqueue(running)
    await until(lambda: on_disk(partial, MEDIUM) > 1_000_000, what="a partial file")
    await first.shutdown()  # the app quits mid-download
    kept = done_ranges(partial, MEDIUM)
    await Download.create(repo_id=queued, state="queued")  # queued when the app quit
    await Download.create(repo_id=paused, state="paused")

    hf_env.hub.throttle_bps = None
    before = len(weight_gets(hf_env.hub, running))
    second = manager_factory()
    changes: list[int] = []
    second.on_change(lambda: changes.append(len(second.downloads)))
    await second.restore()
    assert list(second.downloads) == [running, queued, paused] and changes == [3]
    assert second.downloads[paused].state == "paused"
    for repo_id in (running, queued):
        assert (await finished(second, repo_id)).state == "done"
    resumed = weight_gets(hf_env.hub, running)[before:]
    assert resumed and only_missing_asked(resumed, kept, MEDIUM)
    assert second.downloads[paused].state == "paused" and hf_env.hub.bytes_served(paused) == 0


async def test_a_new_commit_fetches_only_the_changed_file(
    manager_factory: Callable[..., DownloadManager], hf_env: HubEnv, models: dict, tmp_path: Path
) -> None:
    repo_id = f"dl/evolving-{uuid.uuid4().hex[:8]}"
    hf_env.hub.add_repo(repo_id, models["small"])
    manager = manager_factory()
    await manager.enqueue(repo_id)
    first = (await finished(manager, repo_id)).commit

    changed = tmp_path / "v2"
    changed.mkdir()
    for p in models["small"].rglob("*"):
        if p.is_file():
            (changed / p.relative_to(models["small"])).parent.mkdir(parents=True, exist_ok=True)
            (changed / p.relative_to(models["small"])).write_bytes(p.read_bytes())
    (changed / "config.json").write_text('{"model_type": "llama", "hidden_size": 128}')
    second = hf_env.hub.add_repo(repo_id, changed)
    served = hf_env.hub.bytes_served(repo_id)

    await manager.enqueue(repo_id)  # done before: looks for a newer commit
    st = await finished(manager, repo_id)
    assert st.state == "done" and st.commit == second != first
    assert hf_env.hub.bytes_served(repo_id) - served == (changed / "config.json").stat().st_size
    assert_same_files(cache.snapshot_dir(hf_env.cache_dir, repo_id, second), changed)
    assert (cache.repo_dir(hf_env.cache_dir, repo_id) / "refs" / "main").read_text() == second


async def test_forget_keeps_the_model_and_delete_model_removes_it(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv
) -> None:
    kept, deleted = add_repo("small"), add_repo("small")
    manager = manager_factory()
    changes: list[list[str]] = []
    manager.on_change(lambda: changes.append(sorted(manager.downloads)))
    for repo_id in (kept, deleted):
        await manager.enqueue(repo_id)
        await finished(manager, repo_id)

    await manager.forget(kept)
    assert kept not in manager.downloads and not await Download.filter(repo_id=kept).exists()
    assert {m.repo_id for m in cache.cached_revisions(hf_env.cache_dir)} == {kept, deleted}

    hf_env.hub.throttle_bps = 1_000_000
    await manager.enqueue(deleted)  # done before: checks the Hub again, then the user deletes it
    freed = await manager.delete_model(deleted)
    assert freed > SMALL and deleted not in manager.downloads
    assert {m.repo_id for m in cache.cached_revisions(hf_env.cache_dir)} == {kept}
    assert changes[-2:] == [[deleted], []]


async def test_unsubscribed_listeners_hear_nothing_and_the_others_still_do(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str]
) -> None:
    repo_id = add_repo("small")
    manager = manager_factory()
    gone: list[str] = []
    kept: list[str] = []
    stop_changes = manager.on_change(lambda: gone.append("change"))
    stop_done = manager.on_done(lambda st: gone.append(f"done {st.repo_id}"))
    manager.on_change(lambda: kept.append("change"))
    manager.on_done(lambda st: kept.append(f"done {st.repo_id}"))
    stop_changes()
    stop_done()
    stop_done()  # a page may unsubscribe twice (deleted, then its client gone): harmless

    await manager.enqueue(repo_id)
    assert (await finished(manager, repo_id)).state == "done"
    await manager.forget(repo_id)
    assert gone == []
    assert kept == ["change", f"done {repo_id}", "change"]  # added, finished, forgotten
