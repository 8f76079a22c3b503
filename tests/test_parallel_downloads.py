"""Downloads over several connections (issue 16): ranges of large files and several files at once,
the Hub's redirect to its content host (with URLs that expire mid-download), servers that ignore
Range, the bandwidth limit, and the range map that makes a resume exact."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mlxui.hub import cache
from mlxui.hub.bandwidth import RateLimiter, format_rate, parse_rate
from mlxui.hub.downloads import DownloadManager
from mlxui.hub.pull import Progress, RetryPolicy, Transfer, pull
from mlxui.hub.segment_map import RangeSet, SegmentMap, map_path, read_ranges
from tests.harness.downloads import MEDIUM, assert_same_files, finished, sha256, weight_gets
from tests.harness.fixtures_hub import HubEnv

pytest_plugins = ["tests.harness.fixtures_downloads"]

SHARD = 3 * 1024 * 1024 + 11


@pytest.fixture
def sharded(tmp_path: Path, hf_env: HubEnv) -> tuple[str, Path]:
    """A repo of four 3 MB weight shards and the small files a model card needs."""
    folder = tmp_path / "sharded"
    folder.mkdir()
    for i in range(4):
        (folder / f"model-0000{i + 1}-of-00004.safetensors").write_bytes(os.urandom(SHARD))
    (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    repo_id = f"dl/sharded-{uuid.uuid4().hex[:8]}"
    hf_env.hub.add_repo(repo_id, folder)
    return repo_id, folder


async def test_shards_come_in_parallel_over_ranges_and_the_card_files_come_first(
    hf_env: HubEnv, sharded: tuple[str, Path]
) -> None:
    repo_id, folder = sharded
    hub = hf_env.hub
    hub.throttle_bps = 2_000_000  # per connection, as a content network caps them
    seen: list[Progress] = []
    snapshot = await pull(
        repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint,
        on_progress=lambda p: seen.append(Progress(**vars(p))), transfer=Transfer(max_connections=8),
    )  # fmt: skip
    assert_same_files(snapshot, folder)
    assert max(p.connections for p in seen) >= 6  # grew from 4 while the speed grew
    gets = [r for r in hub.requests if r.method == "GET" and r.filename]
    weights = [r for r in gets if r.filename.endswith(".safetensors")]
    assert len(weights) > 4  # the shards were split into ranges ...
    assert {r.filename for r in weights} == {p.name for p in folder.glob("*.safetensors")}
    assert hub.bytes_served(repo_id) == sum(p.stat().st_size for p in folder.iterdir())  # ... each byte once
    # the card's files are taken first: they are among the first connections' first requests
    assert {"config.json", "tokenizer.json"} <= {r.filename for r in gets[:4]}
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)


async def test_the_content_host_redirect_and_urls_that_expire_mid_download(
    hf_env: HubEnv, sharded: tuple[str, Path]
) -> None:
    repo_id, folder = sharded
    hub = hf_env.hub
    hub.redirect_lfs, hub.url_ttl = True, 0.8  # signed URLs die long before the download ends
    hub.throttle_bps = 1_000_000
    snapshot = await pull(
        repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint, token=hf_env.token,
        policy=fast_retries(), transfer=Transfer(max_connections=4),
    )  # fmt: skip
    assert_same_files(snapshot, folder)
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert cdn and all(r.filename.endswith(".safetensors") for r in cdn)  # weights from the content host
    expired = [r for r in cdn if r.status == 403]
    assert expired, "the test must make a URL expire"
    assert hub.cdn.signed > 4 + len(expired) - 1  # each expiry asked the Hub for a fresh URL
    assert all(r.authorization is None for r in cdn)  # the Hub token never goes to the content host
    assert all(r.authorization for r in hub.requests if r.path.startswith(f"/{repo_id}/resolve/"))
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert sum(r.bytes_sent for r in cdn) == weights  # nothing fetched twice


async def test_a_server_that_ignores_range_gets_one_stream_and_no_corruption(
    hf_env: HubEnv, models: dict[str, Path], add_repo: Callable[..., str]
) -> None:
    repo_id = add_repo("medium")
    hub = hf_env.hub
    weights = models["medium"] / "model.safetensors"
    # A partial file from an earlier run: its first 2 MB (the sequential format, no range map).
    partial = cache.partial_path(hf_env.cache_dir, repo_id, sha256(weights))
    partial.parent.mkdir(parents=True)
    partial.write_bytes(weights.read_bytes()[:2_000_000])
    hub.ignore_range = True  # every GET answers 200 with the whole file
    snapshot = await pull(
        repo_id, cache_dir=hf_env.cache_dir, endpoint=hf_env.endpoint, transfer=Transfer(max_connections=8)
    )
    assert_same_files(snapshot, models["medium"])
    whole = [g for g in weight_gets(hub, repo_id) if g.status == 200]
    assert whole, "the server answered a Range with 200"
    assert sum(g.bytes_sent for g in weight_gets(hub, repo_id)) <= 2 * MEDIUM  # one stream, not one per range
    assert not map_path(partial).exists() and not partial.exists()


async def test_the_bandwidth_limit_holds_and_applies_to_a_running_download(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str], hf_env: HubEnv
) -> None:
    repo_id = add_repo("big")  # 24 MB: 12 s at the limit
    manager = manager_factory()
    await manager.settings.save(bandwidth_limit="2MB/s")
    assert manager.settings.bandwidth_limit == 2_000_000 and manager.settings.limiter.rate == 2_000_000
    st = await manager.enqueue(repo_id)
    await asyncio.sleep(1.0)  # past the first reads of each connection (a burst of one read each)
    first, began = st.bytes_done, time.monotonic()
    await asyncio.sleep(2.0)
    rate = (st.bytes_done - first) / (time.monotonic() - began)
    assert 1_000_000 < rate < 2_400_000, rate  # the limit, give or take a publishing interval
    await manager.settings.save(bandwidth_limit=0)  # lifted while it runs: the rest comes at once
    lifted = time.monotonic()
    st = await finished(manager, repo_id)
    assert st.state == "done" and time.monotonic() - lifted < 6


async def test_one_download_can_have_its_own_limit(
    manager_factory: Callable[..., DownloadManager], add_repo: Callable[..., str]
) -> None:
    slow, fast = add_repo("medium"), add_repo("small")
    manager = manager_factory(concurrency=2)
    st = await manager.enqueue(slow, limit_bps=1_000_000)
    other = await manager.enqueue(fast)
    assert (await finished(manager, fast)).state == "done" and other.limit_bps == 0
    assert st.state == "downloading" and st.limit_bps == 1_000_000 and st.bytes_done < MEDIUM
    await manager.cancel(slow)


def test_range_sets_merge_and_name_the_gaps() -> None:
    done = RangeSet([(10, 20), (30, 40)])
    done.add(20, 30)  # touching ranges merge
    assert done.ranges() == [(10, 40)] and done.prefix() == 0
    done.add(0, 5)
    done.add(3, 12)
    assert done.ranges() == [(0, 40)] and done.prefix() == 40 and done.total() == 40
    assert RangeSet([(5, 10), (20, 25)]).missing(30) == [(0, 5), (10, 20), (25, 30)]


def test_the_map_survives_a_torn_record_and_adopts_an_old_partial_file(tmp_path: Path) -> None:
    partial = tmp_path / "blob.incomplete"
    partial.write_bytes(b"x" * 1000)  # the sequential engine's partial file: no map
    assert read_ranges(partial, 5000) == [(0, 1000)]
    seg = SegmentMap(partial, 5000)
    seg.load()
    seg.add(2000, 3000)
    seg.close()
    with map_path(partial).open("ab") as log:
        log.write(b"\x01\x02\x03")  # a record cut short by a kill
    assert read_ranges(partial, 5000) == [(0, 1000), (2000, 3000)]
    partial.write_bytes(b"x" * 5000)  # the file is full-length now: the map, not its size, counts
    assert read_ranges(partial, 5000) == [(0, 1000), (2000, 3000)]


def test_rates_read_like_people_write_them() -> None:
    assert parse_rate("50MB/s") == 50_000_000 and parse_rate("800 KB/s") == 800_000
    assert parse_rate("1.5MiB") == 1_572_864 and parse_rate("0") == 0
    assert format_rate(50_000_000) == "50 MB/s" and format_rate(0) == "no limit"
    with pytest.raises(ValueError, match="50MB/s"):
        parse_rate("fast")


def test_a_limiter_spreads_bytes_over_time() -> None:
    limiter, stop = RateLimiter(4_000_000), threading.Event()
    began = time.monotonic()
    for _ in range(10):
        limiter.take(200_000, stop)  # 2 MB at 4 MB/s: 0.5 s, less the first burst
    assert time.monotonic() - began >= 0.2


def fast_retries() -> RetryPolicy:
    return RetryPolicy(backoff=0.05, stall_timeout=5.0)


def test_connection_threads_read_a_megabyte_at_a_time() -> None:
    """httpcore's 64 KB reads cost a GIL round trip each (docs/architecture.md §11): if an httpcore
    upgrade renames the constant, the download engine must be looked at again."""
    import httpcore._sync.http11 as http11

    import mlxui.hub.fetcher as fetcher

    assert http11.HTTP11Connection.READ_NUM_BYTES == fetcher.READ_BYTES == 1 << 20
