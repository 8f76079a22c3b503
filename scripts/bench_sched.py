"""Benchmarks of memory-aware scheduling (issue 14), in one process with real servers:

- sched-overhead: what the scheduler adds to a gateway request for a model that is ready (the name
  lookup, marking the server busy, the readiness check), and to a start that fits (the admission
  decision itself, without the spawn). p50 over many calls; goal ≤ 1 ms.
- evict-start: a start that must first stop an idle server, against a bare start of the same model,
  alternating, same run; the difference is what eviction adds. Goal ≤ 300 ms added.

Run alone: .venv/bin/python scripts/bench_sched.py [sched-overhead] [evict-start]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "scripts")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_all import print_rows, row  # noqa: E402 - needs the sys.path set-up above

PLAN = 10**9  # plans of 1 GB: budgets in multiples of a plan bind on any machine
ROUNDS = 4


async def _fleet(tmp: Path, names: list[str]):  # -> (Supervisor, {name: ManagedServer})
    from mlxui import db
    from mlxui.config import Config
    from mlxui.servers.supervisor import Supervisor
    from tests.harness.models import build_scripted_plain

    await db.init_db(tmp / "mlxui.sqlite3")
    sup = Supervisor(Config(home=tmp / "home", hf_cache=tmp / "cache"), sampler_interval=0.5)
    await sup.start_up()
    for name in names:
        await sup.profiles.create({"name": name, "model": str(build_scripted_plain(tmp / name))})
    for server in sup.servers.values():
        sup.plans.remember(server.name, server.profile.model, PLAN)
    return sup, sup.servers


async def _overhead() -> list[dict]:
    from mlxui.servers.gateway import Gateway

    with tempfile.TemporaryDirectory(prefix="mlxui-bench-sched-") as tmp:
        sup, servers = await _fleet(Path(tmp), ["a", "b"])
        try:
            await sup.start("a")
            gateway = Gateway(sup)

            async def nobody(_message: dict) -> None:  # the readiness check answers nothing when ready
                raise AssertionError("a ready server needs no answer")

            request_path = []
            for _ in range(2000):
                started = time.perf_counter()
                server = await sup.lookup("a")
                assert server is not None
                with server.in_use():
                    ready = await gateway._ready(server, nobody)
                request_path.append(time.perf_counter() - started)
                assert ready is server
            admissions = []
            for _ in range(2000):  # "b" fits next to "a": the decision, then give the turn back
                started = time.perf_counter()
                await sup.scheduler.admit(servers["b"])
                admissions.append(time.perf_counter() - started)
        finally:
            await sup.shut_down()
            from mlxui import db

            await db.close_db()
    p50_request, p50_admit = statistics.median(request_path) * 1000, statistics.median(admissions) * 1000
    return [
        row("sched-overhead request", p50_request, "ms", 1.0, better="lower",
            detail=f"p50 of 2000 (p99 {sorted(request_path)[1979] * 1000:.3f} ms): lookup, busy mark, ready check"),
        row("sched-overhead admission", p50_admit, "ms", 1.0, better="lower",
            detail=f"p50 of 2000 (p99 {sorted(admissions)[1979] * 1000:.3f} ms): the fit decision for a start"),
    ]  # fmt: skip


async def _evict_start() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="mlxui-bench-sched-") as tmp:
        sup, servers = await _fleet(Path(tmp), ["a", "b"])
        bare, evicting = [], []
        try:

            def plans_of_1_gb() -> None:  # a stop teaches the real (smaller) peak: undo that
                for server in servers.values():
                    sup.plans.remember(server.name, server.profile.model, PLAN)

            for _ in range(ROUNDS):
                sup.memory_budget = lambda: int(2.5 * PLAN)  # type: ignore[method-assign]
                plans_of_1_gb()
                started = time.perf_counter()
                await sup.start("b")  # room for it: a bare start
                bare.append(time.perf_counter() - started)
                await sup.stop("b")
                await sup.start("a")
                sup.memory_budget = lambda: int(1.5 * PLAN)  # type: ignore[method-assign]
                servers["a"].last_used -= 60
                plans_of_1_gb()
                started = time.perf_counter()
                await sup.start("b")  # a must stop first
                evicting.append(time.perf_counter() - started)
                assert servers["a"].note == "Stopped to make room for b"
                await sup.stop("b")
        finally:
            await sup.shut_down()
            from mlxui import db

            await db.close_db()
    added = (statistics.median(evicting) - statistics.median(bare)) * 1000
    detail = (
        f"medians of {ROUNDS} alternating: bare start {statistics.median(bare):.2f} s, "
        f"stop + start {statistics.median(evicting):.2f} s"
    )
    return [row("evict-start added", added, "ms", 300.0, better="lower", detail=detail)]


BENCHES = {
    "sched-overhead": lambda: asyncio.run(_overhead()),
    "evict-start": lambda: asyncio.run(_evict_start()),
}

if __name__ == "__main__":
    print_rows([r for name in sys.argv[1:] or BENCHES for r in BENCHES[name]()])
