"""Benchmark of a distributed profile (issue 17): decode tokens/s of SmolLM2 split over 3 local
ranks (mlx.launch, ring backend, tensor parallel) ÷ the same model as one mlx_lm.server, measured
in one run, one server at a time, rounds alternating.

On one machine the ranks share its cores and memory bandwidth and add a ring all-reduce per layer,
so the ratio is expected below 1 (on a 2-core VM well below). The design's case is another:
machines joined so that a model too big for one runs at all, and on fast links (Thunderbolt 5
RDMA with jaccl) each Mac reads only its share of the weights per token. docs/distributed.md.

Run alone: .venv/bin/python scripts/bench_distributed.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "scripts")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_all import print_rows, row  # noqa: E402 - needs the sys.path set-up above

ROUNDS = 2
TOKENS = 32  # 3 ranks on 2 cores decode at about 1 tok/s: enough tokens to time, not minutes
PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # it keeps counting: no early end of text


async def _decode_rate(base_url: str, tokens: int = TOKENS) -> float:
    """Tokens/s between the first and the last streamed token of one completion."""
    body = {"prompt": PROMPT, "max_tokens": tokens, "temperature": 0.0, "stream": True}
    stamps = []
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=300, trust_env=False) as client,
        client.stream("POST", "/v1/completions", json=body) as response,
    ):
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                stamps.append(time.perf_counter())
    if len(stamps) < 2:
        raise RuntimeError(f"only {len(stamps)} tokens came back")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


async def _ratio() -> list[dict]:
    from mlxui import db
    from mlxui.config import Config
    from mlxui.servers.supervisor import Supervisor
    from tests.harness import smollm2

    model = smollm2.cached_smollm2(smollm2.find_wheel())
    rates: dict[str, list[float]] = {"one": [], "three": []}
    with tempfile.TemporaryDirectory(prefix="mlxui-bench-dist-") as tmp:
        await db.init_db(Path(tmp) / "mlxui.sqlite3")
        sup = Supervisor(Config(home=Path(tmp) / "home", hf_cache=Path(tmp) / "cache"), ready_timeout=300)
        await sup.start_up()
        try:
            await sup.profiles.create({"name": "one", "model": str(model)})
            await sup.profiles.create({"name": "three", "model": str(model), "ranks": 3})
            for _ in range(ROUNDS):
                for name in ("one", "three"):
                    server = await sup.start(name)
                    assert server.base_url is not None
                    await _decode_rate(server.base_url, 4)  # warm: the first answer compiles
                    rates[name].append(await _decode_rate(server.base_url))
                    await sup.stop(name)
        finally:
            await sup.shut_down(stop_servers=True)
            await db.close_db()
    one, three = statistics.median(rates["one"]), statistics.median(rates["three"])
    every = ", ".join(f"{n}: " + " ".join(f"{r:.1f}" for r in rates[n]) for n in rates)
    return [
        row("distributed 1-rank decode", one, "tok/s", detail=f"SmolLM2-135M 4-bit, {TOKENS} tokens, median of {ROUNDS}"),
        row("distributed 3-rank decode", three, "tok/s", detail="3 local ranks, ring backend, tensor parallel"),
        row("distributed 3-rank ÷ 1-rank", three / one, "×",
            detail=f"same run, alternating rounds ({every}); < 1 expected on one machine"),
    ]  # fmt: skip


BENCHES = {"distributed-ratio": lambda: asyncio.run(_ratio())}

if __name__ == "__main__":
    print_rows([r for name in sys.argv[1:] or BENCHES for r in BENCHES[name]()])
