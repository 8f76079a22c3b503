"""Helpers for the download tests: model sizes, file checks, request filters, bounded waits.

The fixtures live in tests/harness/fixtures_downloads.py (a plugin the test modules load with
`pytest_plugins`); this module holds what the tests import by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from mlxui.hub import cache, segment_map
from mlxui.hub.downloads import DownloadManager
from mlxui.state import DownloadState
from tests.harness.fakehub import FakeHub, RequestRecord
from tests.harness.fixtures_hub import HubEnv

BIG = 24 * 1024 * 1024 + 321  # odd sizes: no chunk boundary lines up with the end of a file
MEDIUM = 6 * 1024 * 1024 + 77
SMALL = 1024 * 1024 + 5
ROOT = Path(__file__).resolve().parents[2]


def make_model(folder: Path, weights: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(weights))
    (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    (folder / "tokenizer_config.json").write_text('{"eos_token": "</s>"}')
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.json").write_text('{"nested": true}')
    return folder


class Recorder:
    """A plain object a bindable field is bound to, so a test sees every value the UI would."""

    value: object = None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_files(snapshot: Path, original: Path) -> None:
    names = sorted(p.relative_to(original).as_posix() for p in original.rglob("*") if p.is_file())
    got = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    assert got == names, f"snapshot has {got}, the repo has {names}"
    for name in names:
        assert sha256(snapshot / name) == sha256(original / name), f"{name} differs from the original"


def partials(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("*.incomplete"))


def on_disk(partial: Path, size: int) -> int:
    """Finished bytes of a partial file, as its range map says (the file itself is full-length)."""
    return segment_map.bytes_done(partial, size)


def kept_bytes(blobs: Path) -> int:
    """Bytes of a repo's files on disk: whole blobs, plus the finished ranges of partial files."""
    total = 0
    for p in blobs.glob("*") if blobs.is_dir() else ():
        if p.name.endswith(".incomplete"):
            total += on_disk(p, 1 << 62)
        elif "." not in p.name:
            total += p.stat().st_size
    return total


def done_ranges(partial: Path, size: int) -> list[tuple[int, int]]:
    return segment_map.read_ranges(partial, size)


def asked(record: RequestRecord, size: int) -> tuple[int, int]:
    """The half-open byte range a GET asked for (the whole file without a Range header)."""
    if record.range is None:
        return 0, size
    first, _, last = record.range.removeprefix("bytes=").partition("-")
    return int(first), (int(last) + 1 if last else size)


def only_missing_asked(gets: list[RequestRecord], done: list[tuple[int, int]], size: int) -> bool:
    """No GET asked for a byte that was already on disk."""
    return all(s >= e or a >= e or s >= b for a, b in (asked(g, size) for g in gets) for s, e in done)


def weights_partial(hf_env: HubEnv, repo_id: str, original: Path) -> Path:
    return cache.partial_path(hf_env.cache_dir, repo_id, sha256(original / "model.safetensors"))


def weight_gets(hub: FakeHub, repo_id: str) -> list[RequestRecord]:
    return [
        r
        for r in hub.requests
        if r.repo_id == repo_id and r.filename == "model.safetensors" and r.method == "GET"
    ]


async def until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def finished(manager: DownloadManager, repo_id: str, timeout: float = 30.0) -> DownloadState:
    st = await manager.wait(repo_id, timeout=timeout)
    assert not st.active, f"{repo_id} still {st.state} after {timeout} s"
    return st
