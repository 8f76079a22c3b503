#!/usr/bin/env python
"""Benchmark the gateway against the very mlx_lm.server it proxies, in one run.

Builds the scripted endless model, creates a profile for it, starts the real app (`python -m
mlxui run`), lets its gateway start the server on demand, then measures with one lean client,
alternating direct, relay and gateway runs (ABBA) so drift hits all alike:
  - streamed tokens/s at 1 and 4 concurrent streams (median of --rounds; the ratio is the median
    of the per-round gateway/direct ratios), and through a bare TCP relay for reference,
  - time to first token, direct vs gateway (p50 / p95 and what the gateway adds),
  - the app process's CPU time per streamed token.
Prints a table and writes JSON to bench-results/. Usage: scripts/bench_gateway.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROFILE = "bench"
GOAL_RATIO, GOAL_TTFT_MS = 0.98, 5.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=2000)
    parser.add_argument("--ttft-samples", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--serve-tcp-relay", type=int, nargs=2, metavar=("PORT", "TO"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_tcp_relay:
        return _serve_tcp_relay(*args.serve_tcp_relay)
    with tempfile.TemporaryDirectory(prefix="mlxui-bench-") as tmp:
        result = _bench(Path(tmp), args)
    _print_table(result)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gateway-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {path}")
    return 0


def _bench(tmp: Path, args: argparse.Namespace) -> dict:
    from tests.harness import models
    from tests.harness.app_process import free_port

    model_dir = models.build_scripted_endless(tmp / "endless")
    home, hf_cache = tmp / "home", tmp / "hf-cache"
    hf_cache.mkdir()
    env = {**os.environ, "MLXUI_HOME": str(home), "HF_HUB_CACHE": str(hf_cache), "PYTHONUNBUFFERED": "1"}
    asyncio.run(_create_profile(home, hf_cache, model_dir))
    port = free_port()
    app = _start([sys.executable, "-m", "mlxui", "run", "--no-browser", "--port", str(port)], port, env, home)
    try:
        gateway = f"http://127.0.0.1:{port}"
        asyncio.run(_warm_up(gateway))
        upstream_port = _upstream_port(app.pid)
        relay_port = free_port()
        relay = _start(
            [sys.executable, __file__, "--serve-tcp-relay", str(relay_port), str(upstream_port)],
            relay_port,
            env,
            home,
        )
        try:
            targets = {
                "direct": (f"http://127.0.0.1:{upstream_port}", str(model_dir)),
                "tcp_relay": (f"http://127.0.0.1:{relay_port}", str(model_dir)),
                "gateway": (gateway, PROFILE),
            }
            processes = {"gateway": psutil.Process(app.pid), "tcp_relay": psutil.Process(relay.pid)}
            result = asyncio.run(_measure(targets, processes, args))
        finally:
            _stop(relay)
    finally:
        _stop(app)
    result.update(
        host="app",
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        model="scripted endless (tests/harness/models.py)",
        max_tokens=args.max_tokens,
        rounds=args.rounds,
        goals={"ratio": GOAL_RATIO, "ttft_added_p50_ms": GOAL_TTFT_MS},
    )
    return result


async def _measure(
    targets: dict[str, tuple[str, str]], processes: dict[str, psutil.Process], args: argparse.Namespace
) -> dict:
    names = list(targets)
    result: dict = {"throughput": {}}
    cpu_s = dict.fromkeys(processes, 0.0)
    tokens = dict.fromkeys(processes, 0)
    for streams in (1, 4):
        rates: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            await _run(*targets[name], streams, 200)  # warm every path
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:  # ABBA: drift hits all alike
                proc = processes.get(name)
                before = sum(proc.cpu_times()[:2]) if proc else 0.0
                rate, count = await _run(*targets[name], streams, args.max_tokens)
                rates[name].append(rate)
                if proc:
                    cpu_s[name] += sum(proc.cpu_times()[:2]) - before
                    tokens[name] += count
        entry: dict = {f"{name}_tok_s": rates[name] for name in names}
        for name in names:
            entry[f"{name}_median"] = statistics.median(rates[name])
            if name != "direct":  # each round's runs are neighbours: their ratio cancels slow drift
                paired = [x / d for x, d in zip(rates[name], rates["direct"], strict=True)]
                entry[f"{name}_paired_ratios"] = paired
                entry[f"{name}_ratio"] = statistics.median(paired)
        result["throughput"][str(streams)] = entry
    result["cpu_us_per_token"] = {name: cpu_s[name] / tokens[name] * 1e6 for name in processes}
    ttft: dict[str, list[float]] = {"direct": [], "gateway": []}
    for i in range(args.ttft_samples):
        for name in ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct"):
            sample = await _stream(*targets[name], 4)
            ttft[name].append((sample["first"] - sample["start"]) * 1000)
    stats = {name: {"p50": _pct(v, 50), "p95": _pct(v, 95)} for name, v in ttft.items()}
    result["ttft_ms"] = {
        **stats,
        "added_p50": stats["gateway"]["p50"] - stats["direct"]["p50"],
        "added_p95": stats["gateway"]["p95"] - stats["direct"]["p95"],
        "samples": args.ttft_samples,
    }
    return result


async def _run(base: str, model: str, streams: int, max_tokens: int) -> tuple[float, int]:
    """Aggregate tokens/s of `streams` concurrent streams, from the first token to the last byte."""
    runs = await asyncio.gather(*(_stream(base, model, max_tokens) for _ in range(streams)))
    count = sum(r["tokens"] for r in runs)
    return count / (max(r["end"] for r in runs) - min(r["first"] for r in runs)), count


async def _stream(base: str, model: str, max_tokens: int, timeout: float = 60) -> dict:
    """One streamed chat. The client reads raw bytes (one read per socket wake-up, no de-chunking,
    no SSE parsing) so its own CPU use is the same on both paths; only the usage event is parsed."""
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    host, port = base.removeprefix("http://").split(":")
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            text = (await reader.read(100_000))[:300]
            raise HttpError(status, f"{base} answered HTTP {status}: {text!r}")
        first = None
        tail = b""
        read = reader.read
        while data := await read(65536):
            if first is None:
                first = time.perf_counter()
            tail = data if len(data) > 4096 else (tail + data)[-8192:]
        end = time.perf_counter()
    finally:
        writer.close()
    at = tail.rfind(b'"usage"')
    event = tail[tail.rfind(b"data: {", 0, at) + 6 : tail.find(b"\n\n", at)]
    return {
        "start": start,
        "first": first,
        "end": end,
        "tokens": json.loads(event)["usage"]["completion_tokens"],
    }


async def _warm_up(gateway: str) -> None:
    """The first request starts the server on demand; retried while the app still loads profiles."""
    deadline = time.monotonic() + 120
    while True:
        try:
            await _stream(gateway, PROFILE, 8, timeout=120)
            return
        except HttpError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise SystemExit(str(exc)) from None
            await asyncio.sleep(0.5)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _create_profile(home: Path, hf_cache: Path, model_dir: Path) -> None:
    from mlxui import db
    from mlxui.config import Config
    from mlxui.servers.supervisor import Supervisor

    config = Config(home=home, hf_cache=hf_cache)
    config.ensure_dirs()
    await db.init_db(config.db_path)
    try:
        await Supervisor(config, gpu=None).profiles.create({"name": PROFILE, "model": str(model_dir)})
    finally:
        await db.close_db()


def _start(cmd: list[str], port: int, env: dict[str, str], home: Path) -> subprocess.Popen:
    import httpx

    home.mkdir(parents=True, exist_ok=True)
    log = (home / "bench-host.log").open("ab")
    process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{cmd[1:4]} exited; see {home / 'bench-host.log'}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    _stop(process)
    raise SystemExit(f"{cmd[1:4]} did not answer within 60 s")


def _upstream_port(app_pid: int) -> int:
    for child in psutil.Process(app_pid).children(recursive=True):
        cmd = child.cmdline()
        if "mlx_lm.server" in cmd and "--port" in cmd:
            return int(cmd[cmd.index("--port") + 1])
    raise SystemExit("no mlx_lm.server child of the app was found")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (the app stops its servers on quit), then kill what is left of its process tree."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    for child in tree:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue


def _pct(values: list[float], pct: int) -> float:
    return statistics.median(values) if pct == 50 else statistics.quantiles(values, n=100)[pct - 1]


def _print_table(r: dict) -> None:
    print(
        f"\nGateway benchmark: {r['model']}, {r['max_tokens']} tokens per stream, {r['rounds']} rounds (medians)"
    )
    print(f"host: {r['host']}; machine: {r['machine']['cpus']} CPUs, {r['machine']['platform']}\n")
    print(
        f"{'streams':>7}  {'direct tok/s':>12}  {'gateway tok/s':>13}  {'ratio':>6}  "
        f"{'tcp relay ratio':>15}  goal"
    )
    for streams, t in r["throughput"].items():
        ok = "ok" if t["gateway_ratio"] >= GOAL_RATIO else "MISSED"
        print(
            f"{streams:>7}  {t['direct_median']:>12.0f}  {t['gateway_median']:>13.0f}  {t['gateway_ratio']:>6.3f}  "
            f"{t['tcp_relay_ratio']:>15.3f}  >= {GOAL_RATIO} {ok}"
        )
    print(
        "(ratio = median of per-round gateway/direct; tcp relay = a bare byte pipe, the floor for any proxy hop)"
    )
    f = r["ttft_ms"]
    ok = "ok" if f["added_p50"] <= GOAL_TTFT_MS else "MISSED"
    print(
        f"\nTTFT ms ({f['samples']} each)  direct p50 {f['direct']['p50']:.2f} p95 {f['direct']['p95']:.2f}  "
        f"gateway p50 {f['gateway']['p50']:.2f} p95 {f['gateway']['p95']:.2f}"
    )
    print(
        f"TTFT added by the gateway: p50 {f['added_p50']:.2f} ms, p95 {f['added_p95']:.2f} ms  "
        f"(goal p50 <= {GOAL_TTFT_MS} ms) {ok}"
    )
    cpu = r["cpu_us_per_token"]
    print(
        f"CPU per streamed token: gateway (whole app process) {cpu['gateway']:.0f} µs, "
        f"bare tcp relay {cpu['tcp_relay']:.0f} µs"
    )


def _serve_tcp_relay(port: int, to_port: int) -> int:
    """A bare byte pipe to the server: what any proxy hop costs at least (reference, not product)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
        except OSError:
            return  # the other side went away: close ours (finally)
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", to_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        await server.serve_forever()

    try:
        import uvloop  # the app's uvicorn runs on uvloop when installed: compare like with like

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
