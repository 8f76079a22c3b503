#!/usr/bin/env python
"""Parallel downloads (issue 16): mlxui's pull against aria2c on a stand-in for the Hub whose
content host caps each connection, and how the app's event loop fares during a full-speed pull.

parallel-one-shard / parallel-four-shards: the fake Hub (its own process) redirects large files to
  a second host (its content host, as the Hub's CDN) and caps each connection at 10 MB/s. One 80 MB
  shard, then four 20 MB shards, are fetched by `aria2c -x8 -s8 -j4` and by `pull()` into a fresh
  HF cache, alternating, `rounds` (3) times each; the figure is aria2c's median time ÷ pull's
  (≥ 1: pull is as fast or faster). pull checks every file's sha256; aria2c checks nothing.
loop-lag: while `pull()` fetches 200 MB over loopback uncapped, a coroutine in the same event loop
  asks to sleep 10 ms, over and over; the figure is the longest it overslept (what a UI update or a
  websocket frame would wait).

Run alone (`.venv/bin/python scripts/bench_parallel.py [--rounds 3]`) or through `scripts/bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "scripts")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_all import print_rows, row  # noqa: E402 - needs the sys.path set-up above
from bench_downloads import STEP_TIMEOUT_S, _hub_process, _make_repo, _scratch  # noqa: E402

CAP_BPS = 10_000_000  # per connection, as a content network caps it
ONE_SHARD = 80_000_000
FOUR_SHARDS = 20_000_000
LAG_BYTES = 200 * 1024 * 1024
GOAL_RATIO = 0.9
REPO_ID = "bench-org/Parallel"


def bench_one_shard(rounds: int = 3) -> list[dict]:
    return [_versus_aria2("one 80 MB shard", [ONE_SHARD], rounds)]


def bench_four_shards(rounds: int = 3) -> list[dict]:
    return [_versus_aria2("four 20 MB shards", [FOUR_SHARDS] * 4, rounds)]


def _versus_aria2(label: str, sizes: list[int], rounds: int) -> dict:
    if shutil.which("aria2c") is None:
        return row(f"pull ÷ aria2c, {label}", None, "×", detail="aria2c is not installed (apt install aria2)")
    with tempfile.TemporaryDirectory(prefix="mlxui-bench-par-", dir=_scratch()) as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "repo"
        folder.mkdir()
        names = [f"model-{i + 1:05d}-of-{len(sizes):05d}.safetensors" for i in range(len(sizes))]
        for name, size in zip(names, sizes, strict=True):
            _make_repo(tmp / "part", size, with_config=False)
            (tmp / "part" / "model.safetensors").rename(folder / name)
            shutil.rmtree(tmp / "part")
        (folder / "config.json").write_text('{"model_type": "llama"}')
        with _hub_process(folder, REPO_ID, CAP_BPS, tmp / "hub.log", redirect=True) as endpoint:
            aria_s, pull_s = [], []
            for i in range(rounds):
                for tool in ("aria2c", "pull") if i % 2 == 0 else ("pull", "aria2c"):
                    if tool == "aria2c":
                        aria_s.append(_aria2(endpoint, [*names, "config.json"], tmp / "aria"))
                    else:
                        pull_s.append(_pull(endpoint, tmp / "hf-cache"))
    ratio = statistics.median(aria_s) / statistics.median(pull_s)
    total = sum(sizes) / 1e6
    detail = (
        f"{total:.0f} MB, each connection capped at {CAP_BPS / 1e6:.0f} MB/s, large files redirected to a "
        f"second host; {rounds} runs each, alternating: aria2c -x8 -s8 -j4 {_runs(aria_s)} s, "
        f"pull {_runs(pull_s)} s (sha256 checked); pull {total / statistics.median(pull_s):.0f} MB/s"
    )
    return row(f"pull ÷ aria2c speed, {label}", ratio, "×", GOAL_RATIO, detail=detail)


def _aria2(endpoint: str, names: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    listing = out / "urls.txt"
    listing.write_text("".join(f"{endpoint}/{REPO_ID}/resolve/main/{n}\n  out={n}\n" for n in names))
    started = time.monotonic()
    subprocess.run(
        ["aria2c", "-x8", "-s8", "-j4", "--quiet=true", "--dir", str(out), "--input-file", str(listing)],
        check=True, timeout=STEP_TIMEOUT_S,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    shutil.rmtree(out)
    return elapsed


def _pull(endpoint: str, cache_dir: Path) -> float:
    from mlxui.hub.pull import pull
    from tests.harness.fakehub import VALID_TOKEN

    shutil.rmtree(cache_dir, ignore_errors=True)
    cache_dir.mkdir()
    started = time.monotonic()
    asyncio.run(
        asyncio.wait_for(
            pull(REPO_ID, cache_dir=cache_dir, endpoint=endpoint, token=VALID_TOKEN), STEP_TIMEOUT_S
        )
    )
    elapsed = time.monotonic() - started
    shutil.rmtree(cache_dir)
    return elapsed


def bench_loop_lag() -> list[dict]:
    from mlxui.hub.pull import pull
    from tests.harness.fakehub import VALID_TOKEN

    with tempfile.TemporaryDirectory(prefix="mlxui-bench-lag-", dir=_scratch()) as tmp_name:
        tmp = Path(tmp_name)
        folder = _make_repo(tmp / "repo", LAG_BYTES, with_config=True)
        with _hub_process(folder, REPO_ID, 0, tmp / "hub.log") as endpoint:

            async def measure() -> tuple[list[float], float]:
                lags: list[float] = []
                task = asyncio.create_task(
                    pull(REPO_ID, cache_dir=tmp / "hf-cache", endpoint=endpoint, token=VALID_TOKEN)
                )
                started = time.monotonic()
                while not task.done():
                    before = time.monotonic()
                    await asyncio.sleep(0.01)
                    lags.append(time.monotonic() - before - 0.01)
                await task
                return lags, time.monotonic() - started

            lags, took = asyncio.run(measure())
    lags.sort()
    detail = (
        f"{LAG_BYTES / 1e6:.0f} MB over loopback, uncapped, in {took:.2f} s ({LAG_BYTES / 1e6 / took:.0f} MB/s); "
        f"{len(lags)} sleeps of 10 ms; p50 {lags[len(lags) // 2] * 1000:.1f} ms, "
        f"p99 {lags[int(len(lags) * 0.99)] * 1000:.1f} ms over"
    )
    return [
        row("event loop: longest oversleep during a full-speed pull", lags[-1] * 1000, "ms", detail=detail)
    ]


def _runs(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["one", "four", "lag"])
    args = parser.parse_args()
    rows = []
    if args.only in (None, "one"):
        rows += bench_one_shard(args.rounds)
    if args.only in (None, "four"):
        rows += bench_four_shards(args.rounds)
    if args.only in (None, "lag"):
        rows += bench_loop_lag()
    print_rows(rows)
    return 0


BENCHES = {
    "parallel-one-shard": bench_one_shard,
    "parallel-four-shards": bench_four_shards,
    "loop-lag": bench_loop_lag,
}

if __name__ == "__main__":
    sys.exit(main())
