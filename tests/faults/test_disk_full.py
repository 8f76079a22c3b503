"""The disk fills up while a model downloads (another program writes a big file meanwhile): the
download stops with a sentence saying so, keeps what it has, and once space is free again it
resumes from the bytes on disk and ends with files identical to the Hub's."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlxui.hub import cache
from mlxui.hub.downloads import DownloadManager
from tests.harness.downloads import (
    MEDIUM,
    assert_same_files,
    done_ranges,
    finished,
    only_missing_asked,
    partials,
    until,
    weight_gets,
)
from tests.harness.fakehub import FakeHub
from tests.harness.fixtures_hub import HubEnv

SMALL_DISK_MB = 12


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 12 MB filesystem (tmpfs), so writes fail with the kernel's own ENOSPC."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small filesystem needs root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m", "tmpfs", str(mount_point)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True, timeout=10)


def fill(disk: Path) -> Path:
    """What another program does: write until the disk is full."""
    filler = disk / "filler.bin"
    with filler.open("wb") as out:
        for _ in range(SMALL_DISK_MB * 4):  # bounded: 256 KB at a time, more than the disk holds
            try:
                out.write(b"\0" * 262_144)
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return filler
    raise AssertionError("the small disk never filled")


async def test_a_disk_that_fills_mid_download_fails_clearly_then_resumes_intact(
    small_disk: Path, fake_hub: FakeHub, hf_env: HubEnv, models: dict[str, Path], download_db: Path
) -> None:
    repo_id = "dl/medium-disk-full"
    fake_hub.add_repo(repo_id, models["medium"])
    fake_hub.throttle_bps = 1_500_000
    cache_dir = small_disk / "hf-cache"
    # No preallocation, as on a file system without it (then the disk can fill mid-range; with
    # it, the partial file's blocks are reserved before the first byte).
    manager = DownloadManager(
        cache_dir,
        hf_env.endpoint,
        lambda: None,
        backoff=0.05,
        stall_timeout=5.0,
        retries=2,
        preallocate=False,
    )
    try:
        st = await manager.enqueue(repo_id)
        await until(lambda: st.bytes_done >= 1_000_000, what="a first megabyte on disk")
        filler = fill(small_disk)
        st = await finished(manager, repo_id)
        assert st.state == "failed"
        assert st.error == "The disk is full: free some space, then retry (the download resumes)."
        [partial] = partials(cache_dir)
        kept = done_ranges(partial, MEDIUM)
        assert sum(e - s for s, e in kept) >= 1_000_000, "the bytes already downloaded are kept"

        filler.unlink()  # the user frees some space
        fake_hub.throttle_bps = None
        gets_before = len(weight_gets(fake_hub, repo_id))
        await manager.retry(repo_id)
        st = await finished(manager, repo_id)
        assert st.state == "done", st.error
        assert_same_files(cache.snapshot_dir(cache_dir, repo_id, st.commit), models["medium"])
        resumed = weight_gets(fake_hub, repo_id)[gets_before:]
        assert only_missing_asked(resumed, kept, MEDIUM), "it continues from the ranges on disk"
        assert sum(g.bytes_sent for g in resumed) == MEDIUM - sum(e - s for s, e in kept), (
            "nothing fetched twice"
        )
    finally:
        await manager.shutdown()
