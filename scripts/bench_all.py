#!/usr/bin/env python
"""Run every mlxui benchmark in one process and report each figure against its goal.

Each benchmark module in scripts/ (MODULES below) exposes either `BENCHES = {name: fn}` or a
`run()`; every function returns rows made with `row()`: {name, value, unit, goal, goal_text, ok,
detail}. The runner prints one table, writes bench-results/<timestamp>.json and .md (git-ignored)
and exits 0 even when a goal is missed: a missed goal is a finding to explain, printed as MISSED.

    scripts/bench                       everything
    scripts/bench --only downloads      one module (downloads, render, gateway, app, chat) ...
    scripts/bench --only resume-refetch ... or one benchmark by name; --only may repeat
    scripts/bench --list                what there is
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
# Module (in scripts/) -> short name for --only. The gateway benchmark is another module's work:
# while it has no `run() -> list[dict]` (or BENCHES), its command line runs instead (CLI_FALLBACKS),
# and a module with neither shows as a row saying what is missing rather than vanishing.
MODULES = {
    "bench_downloads": "downloads",
    "bench_parallel": "parallel",
    "bench_render": "render",
    "bench_gateway": "gateway",
    "bench_app": "app",
    "bench_chat": "chat",
    "bench_sched": "sched",
    "bench_dialects": "dialects",
    "bench_distributed": "distributed",
}

Bench = Callable[[], list[dict]]


def row(
    name: str,
    value: float | None,
    unit: str,
    goal: float | None = None,
    *,
    better: str = "higher",
    detail: str = "",
) -> dict:
    """One figure. With a goal, `ok` says whether it was met (`better`: "higher" or "lower")."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    ok = None
    if goal is not None and value is not None:
        ok = value >= goal if better == "higher" else value <= goal
    goal_text = "" if goal is None else f"{'≥' if better == 'higher' else '≤'} {_fmt(goal)} {unit}".strip()
    return {"name": name, "value": value, "unit": unit, "goal": goal, "goal_text": goal_text, "ok": ok,
            "detail": detail}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    only_help = "a module (downloads, render, gateway, app, chat) or a benchmark name; may repeat"
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help=only_help)
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

    benches, problems = collect()
    if args.list:
        for (module, name), _fn in benches.items():
            print(f"{module:10} {name}")
        return 0
    wanted = {w for item in args.only for w in item.split(",") if w}
    unknown = wanted - {m for m, _ in benches} - {n for _, n in benches} - set(problems)
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))} (see --list)")

    started = time.strftime("%Y%m%d-%H%M%S")
    load_before = _load()  # other work on the machine moves every figure: say how busy it was
    rows = [problem for module, problem in problems.items() if not wanted or module in wanted]
    for (module, name), fn in benches.items():
        if wanted and module not in wanted and name not in wanted:
            continue
        print(f"▶ {name} ({module}) …", flush=True)
        rows += _run_one(name, fn)
    machine = describe_machine() | {"load average (1/5/15 min) before, after": f"{load_before}; {_load()}"}
    print()
    print_rows(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"started": started, "machine": machine, "rows": rows}
    (args.out / f"{started}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (args.out / f"{started}.md").write_text(markdown(rows, machine))
    print(f"\nresults: {args.out / started}.json and .md")
    missed = [r["name"] for r in rows if r["ok"] is False]
    not_run = [r["name"] for r in rows if r["value"] is None and r["ok"] is None]
    print(f"MISSED: {', '.join(missed)}" if missed else "every goal of the benchmarks run was met")
    if not_run:
        print(f"not run: {', '.join(not_run)}")
    return 0


def collect() -> tuple[dict[tuple[str, str], Bench], dict[str, dict]]:
    """(module, benchmark name) -> function, and a row for each module that offers nothing runnable."""
    benches: dict[tuple[str, str], Bench] = {}
    problems: dict[str, dict] = {}
    for module_name, short in MODULES.items():
        if not (ROOT / "scripts" / f"{module_name}.py").exists():
            problems[short] = row(short, None, "", detail=f"scripts/{module_name}.py does not exist yet")
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - a module that cannot load must not stop the others
            problems[short] = row(short, None, "", detail=f"ERROR importing scripts/{module_name}.py: {exc}")
            problems[short]["ok"] = False
            continue
        found = getattr(module, "BENCHES", None) or (
            {short: module.run} if callable(getattr(module, "run", None)) else None
        )
        if not found and short in CLI_FALLBACKS:
            found = {short: CLI_FALLBACKS[short]}
        if not found:
            problems[short] = row(
                short, None, "", detail=f"scripts/{module_name}.py has no run() or BENCHES to call yet"
            )
            continue
        for name, fn in found.items():
            benches[(short, name)] = fn
    return benches, problems


# ----- the gateway benchmark, through its command line ---------------------------------------------------
GATEWAY_GOAL_RATIO, GATEWAY_GOAL_TTFT_MS = 0.98, 5.0  # issue 8
GATEWAY_TIMEOUT_S = 600


def gateway_from_cli() -> list[dict]:
    """scripts/bench_gateway.py offers no run() yet: run its command line and read the JSON it writes.

    Once it has run() (or BENCHES), collect() calls that instead and this goes unused."""
    with tempfile.TemporaryDirectory(prefix="mlxui-bench-gateway-") as out:
        # its own session: on a timeout the whole group (app, servers, relay) goes, by its id
        child = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "bench_gateway.py"), "--out", out],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            output, _ = child.communicate(timeout=GATEWAY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise TimeoutError(f"bench_gateway.py ran longer than {GATEWAY_TIMEOUT_S} s") from None
        found = sorted(Path(out).glob("gateway-*.json"))
        if child.returncode != 0 or not found:
            raise RuntimeError(f"bench_gateway.py exited {child.returncode}: {output[-600:]}")
        return gateway_rows(json.loads(found[-1].read_text()))


def gateway_rows(result: dict) -> list[dict]:
    """Rows from bench_gateway.py's JSON (keys as it writes them on 2026-11-25)."""
    rows = []
    for streams, t in sorted(result["throughput"].items()):
        relay = t.get("tcp_relay_ratio")
        rows.append(row(
            f"gateway ÷ direct tok/s, {streams} stream{'s' if streams != '1' else ''}", t["gateway_ratio"], "×",
            GATEWAY_GOAL_RATIO,
            detail=f"median of {len(t['gateway_paired_ratios'])} paired ratios; direct {t['direct_median']:.0f}, "
                   f"gateway {t['gateway_median']:.0f} tok/s"
                   + (f"; a bare TCP relay reaches {relay:.3f}" if relay is not None else ""),
        ))  # fmt: skip
    ttft = result["ttft_ms"]
    for pct in ("p50", "p95"):
        rows.append(row(
            f"time to first token added by the gateway, {pct}", ttft[f"added_{pct}"], "ms", GATEWAY_GOAL_TTFT_MS,
            better="lower",
            detail=f"direct {ttft['direct'][pct]:.1f} ms, gateway {ttft['gateway'][pct]:.1f} ms; "
                   f"{ttft['samples']} samples; host: {result.get('host', '?')}",
        ))  # fmt: skip
    return rows


CLI_FALLBACKS: dict[str, Bench] = {"gateway": gateway_from_cli}


def _run_one(name: str, fn: Bench) -> list[dict]:
    started = time.monotonic()
    try:
        got = fn()
        if not isinstance(got, list) or not all(isinstance(r, dict) for r in got):
            raise TypeError(f"{name} returned {type(got).__name__}, not a list of rows (dicts)")
        rows = [_normalise(r) for r in got]
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
        traceback.print_exc()
        rows = [row(name, None, "", detail=f"ERROR: {type(exc).__name__}: {exc}"[:400])]
        rows[0]["ok"] = False
    took = time.monotonic() - started
    print(f"  {name}: {took:.1f} s", flush=True)
    for r in rows:
        r.setdefault("seconds", round(took, 1))
    return rows


def _normalise(r: dict) -> dict:
    """Rows from modules written elsewhere may leave keys out; the table needs all of them."""
    out = {"name": "?", "value": None, "unit": "", "goal": None, "goal_text": "", "ok": None, "detail": ""}
    out.update(r)
    return out


# ----- reporting -----------------------------------------------------------------------------------------
def status(r: dict) -> str:
    if r["ok"] is True:
        return "ok"
    if r["ok"] is False:
        return "ERROR" if r["value"] is None else "MISSED"
    return "not run" if r["value"] is None else "—"


def print_rows(rows: list[dict]) -> None:
    table = [("benchmark", "value", "goal", "status")] + [
        (r["name"], f"{_fmt(r['value'])} {r['unit']}".strip(), r["goal_text"] or "—", status(r)) for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r["detail"]:
            print(f"  · {r['name']}: {r['detail']}")


def markdown(rows: list[dict], machine: dict) -> str:
    lines = ["| benchmark | value | goal | status | detail |", "|---|---:|---|---|---|"]
    for r in rows:
        value = f"{_fmt(r['value'])} {r['unit']}".strip()
        detail = r["detail"].replace("|", "\\|")
        lines.append(f"| {r['name']} | {value} | {r['goal_text'] or '—'} | {status(r)} | {detail} |")
    facts = "\n".join(f"- {k}: {v}" for k, v in machine.items() if k != "free")
    return f"## Machine\n\n{facts}\n\n```\n{machine['free']}\n```\n\n## Results\n\n" + "\n".join(lines) + "\n"


def describe_machine() -> dict:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                    if ln.startswith("model name")), cpu)  # fmt: skip
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "mlx": version("mlx"),
        "mlx-lm": version("mlx-lm"),
        "huggingface_hub": version("huggingface_hub"),
        "nicegui": version("nicegui"),
        "git": _command(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "free": _command(["free", "-h"]),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _command(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, check=True).stdout.strip("\n")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"({' '.join(args)} failed: {exc})"


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return "∞"
    magnitude = abs(value)
    if value == int(value) and magnitude < 1e6:
        return f"{int(value):,}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(main())
