#!/usr/bin/env python
"""App benchmarks against the real app (`running_app`) with real mlx_lm servers on tiny built models.

cold-start: spawn `python -m mlxui run` with a fresh MLXUI_HOME, poll /healthz every 10 ms until 200.
idle + ws-tile (one session): TILES servers ready, a headless Chromium tab on /servers; once every
  chart holds its full 60-point window, for WINDOW_S: the app pid's RSS and CPU % (not its servers')
  and the websocket bytes Chromium receives (DevTools performance log) ÷ seconds ÷ TILES; then
  BUSY_S with every server streaming replies through the gateway. Baseline: /settings (no tiles).
readiness-latency: model really ready (first 200 to a direct 1-token chat request, tried every
  PROBE_EVERY_S) -> /api/servers/NAME says "ready" (polled every POLL_EVERY_S); median of 3 starts.
ws-reply: websocket bytes the Chat page receives from Enter until the reply is saved, for a
  1,000-token reply (a scripted model looping a paragraph), at the tiny model's own speed and slowed.

Run alone (`.venv/bin/python scripts/bench_app.py [NAME ...]`) or through `scripts/bench --only app`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "scripts")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import httpx  # noqa: E402
import psutil  # noqa: E402
from bench_all import print_rows, row  # noqa: E402 - needs the sys.path set-up above

GOAL_COLD_S, GOAL_RSS_MB, GOAL_CPU_PCT = 3.0, 150.0, 2.0
GOAL_READY_MS, GOAL_TILE_BPS, GOAL_REPLY_B = 250.0, 2048.0, 102_400.0
COLD_STARTS = 3
TILES, WINDOW_S, BASELINE_S, BUSY_S = 3, 20.0, 10.0, 10.0
SETTLE_UPTIME_S = 62.0  # a chart resends its last 60 samples (1 Hz): measure once that window is full
READY_ROUNDS, PROBE_EVERY_S, POLL_EVERY_S = 3, 0.02, 0.01
REPLY_TOKENS = 1000
SLOW_LAYERS = 60  # zero-output layers: ~35 tok/s here instead of ~1,300
# One paragraph (distinct tokens: a token has one successor), looped until --max-tokens.
PROSE = ("The", " server", " keeps", " each", " model", " in", " memory", " while", " it", " answers",
         " requests", ",", " so", " a", " reply", " starts", " quickly", " and", " streams", " back",
         " steadily", ".", " When", " nobody", " has", " asked", " for", " ten", " minutes", " the",
         " idle", " timer", " shuts", " that", " process", " down", " to", " free", " RAM", "!", "\n\n")  # fmt: skip
WS_RECEIVED, WS_SENT = "Network.webSocketFrameReceived", "Network.webSocketFrameSent"
_TILES_ROWS: dict[str, list[dict]] = {}  # idle and ws-tile share one session


# ----- cold start ------------------------------------------------------------------------------------------
def bench_cold_start() -> list[dict]:
    from tests.harness.app_process import AppProcess, app_env, free_port

    times = []
    with tempfile.TemporaryDirectory(prefix="mlxui-bench-cold-") as tmp:
        for i in range(COLD_STARTS):
            home, port = Path(tmp) / f"home-{i}", free_port()
            home.mkdir()
            with (home / "app.log").open("wb") as log:
                started = time.monotonic()
                process = subprocess.Popen(
                    [sys.executable, "-m", "mlxui", "run", "--no-browser", "--port", str(port)],
                    env=app_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                )  # fmt: skip
            app = AppProcess(process, port, home, home / "app.log")
            try:
                times.append(_until_healthy(app, started))
            finally:
                children = _children(app.pid)
                app.stop()
                _reap(children)
    return [row("cold start to /healthz 200", statistics.median(times), "s", GOAL_COLD_S, better="lower",
                detail=f"median of {COLD_STARTS} fresh starts (fresh MLXUI_HOME each): "
                       + "/".join(f"{t:.2f}" for t in times) + " s; /healthz polled every 10 ms")]  # fmt: skip


def _until_healthy(app, started: float, timeout: float = 60.0) -> float:
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() - started < timeout:
            if app.process.poll() is not None:
                raise RuntimeError(f"mlxui exited with {app.process.returncode}:\n{app.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{app.url}/healthz").status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.01)
    raise TimeoutError(f"no /healthz 200 in {timeout} s:\n{app.log_tail()}")


# ----- idle footprint and websocket bytes per tile (one session) -------------------------------------------
def _tiles_session() -> dict[str, list[dict]]:
    if _TILES_ROWS:
        return _TILES_ROWS  # measured moments ago, for the other benchmark of this pair
    from tests.harness.browser import new_driver, quit_driver, wait_for
    from tests.harness.models import build_scripted_plain, build_tiny_llama

    with _session("tiles") as (tmp, app, api):
        llama, plain = build_tiny_llama(tmp / "llama"), build_scripted_plain(tmp / "plain")
        names = [f"tile-{i}" for i in range(TILES)]
        for i, name in enumerate(names):
            _add_profile(api, name, plain if i % 2 else llama)
            _start(api, name)
        driver = new_driver(performance_log=True)
        try:
            driver.get(f"{app.url}/settings")  # a page with no tiles: the baseline
            time.sleep(3)
            _ws_bytes(driver)
            time.sleep(BASELINE_S)
            base = _ws_bytes(driver)
            driver.get(f"{app.url}/servers")
            wait_for(lambda: all(driver.find_elements("css selector", f'[data-testid="server-tile-{n}"]')
                                 for n in names), timeout=20, what="the tiles")  # fmt: skip
            while min(s["uptime_s"] or 0 for s in api.get("/api/servers").json()) < SETTLE_UPTIME_S:
                time.sleep(0.5)
            _ws_bytes(driver)  # drain: only the window counts
            proc = psutil.Process(app.pid)
            cpu0, wall0, rss = sum(proc.cpu_times()[:2]), time.monotonic(), []
            while time.monotonic() - wall0 < WINDOW_S:
                rss.append(proc.memory_info().rss)
                time.sleep(1.0)
            cpu_s, seconds = sum(proc.cpu_times()[:2]) - cpu0, time.monotonic() - wall0
            got = _ws_bytes(driver)
            servers = api.get("/api/servers").json()
            busy, busy_s, requests = _busy_window(driver, app.url, names)
        finally:
            quit_driver(driver)
    _TILES_ROWS["idle"] = [
        row("idle: app RSS", max(rss) / 1e6, "MB", GOAL_RSS_MB, better="lower",
            detail=f"the app pid only, largest of {len(rss)} samples over {seconds:.0f} s (median "
                   f"{statistics.median(rss) / 1e6:.0f} MB); {TILES} servers ready (their own trees "
                   + "/".join(f"{(s['rss_bytes'] or 0) / 1e6:.0f}" for s in servers)
                   + " MB, not counted); one Chromium tab on /servers"),
        row("idle: app CPU", cpu_s / seconds * 100, "% of a core", GOAL_CPU_PCT, better="lower",
            detail=f"the app pid's user+system CPU time over {seconds:.1f} s, same tab; servers up >= "
                   f"{SETTLE_UPTIME_S:.0f} s, so every chart resends its full window"),
    ]  # fmt: skip
    _TILES_ROWS["ws-tile"] = [
        row("websocket bytes per server tile", got["received"] / seconds / TILES, "B/s", GOAL_TILE_BPS,
            better="lower",
            detail=f"/servers, {TILES} idle servers: {got['received']:,} B in {got['received_frames']} frames "
                   f"received in {seconds:.1f} s (÷ {TILES}); sent {got['sent']:,} B in {got['sent_frames']} "
                   f"frames; baseline /settings (no tiles) {base['received'] / BASELINE_S:.1f} B/s received, "
                   f"{base['sent'] / BASELINE_S:.1f} B/s sent; {got['polls']} long-poll requests"),
        row("websocket bytes per busy server tile", busy["received"] / busy_s / TILES, "B/s", GOAL_TILE_BPS,
            better="lower",
            detail=f"the same {TILES} tiles while each server streams replies (max_tokens 64) through the gateway "
                   f"({requests / busy_s / TILES:.1f} requests/s each): {busy['received']:,} B in "
                   f"{busy['received_frames']} frames in {busy_s:.1f} s (÷ {TILES})"),
    ]  # fmt: skip
    return _TILES_ROWS


def _busy_window(driver, url: str, names: list[str]) -> tuple[dict[str, int], float, int]:
    """Every tile's server streams short replies through the gateway for BUSY_S: tiles in use."""
    stop, done = threading.Event(), []
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "stream": True}

    def chat(name: str) -> None:
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
            while not stop.is_set():
                with client.stream("POST", "/v1/chat/completions", json={**body, "model": name}) as answer:
                    for _ in answer.iter_bytes():
                        pass
                done.append(time.monotonic())
                time.sleep(0.2)

    threads = [threading.Thread(target=chat, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)  # a sampler tick sees them busy
        _ws_bytes(driver)
        started = time.monotonic()
        time.sleep(BUSY_S)
        got, ended = _ws_bytes(driver), time.monotonic()
        return got, ended - started, sum(started <= t <= ended for t in done)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


# ----- readiness latency -----------------------------------------------------------------------------------
def bench_readiness() -> list[dict]:
    from tests.harness.models import build_tiny_llama

    rounds = []
    with _session("ready") as (tmp, app, api):
        _add_profile(api, "ready", build_tiny_llama(tmp / "llama"))
        for _ in range(READY_ROUNDS):
            rounds.append(_one_start(api, app.url, "ready"))
            assert api.post("/api/servers/ready/stop").status_code == 200
    latencies = [r["latency_ms"] for r in rounds]
    return [row("readiness latency (model ready -> app ready)", statistics.median(latencies), "ms",
                GOAL_READY_MS, better="lower",
                detail=f"median of {READY_ROUNDS} starts: " + "/".join(f"{v:.0f}" for v in latencies)
                       + " ms; spawn -> first direct 200: " + "/".join(f"{r['load_s']:.2f}" for r in rounds)
                       + f" s; direct probe every {PROBE_EVERY_S * 1000:.0f} ms (its first 200 came "
                       + "/".join(f"{r['probe_gap_ms']:.0f}" for r in rounds) + " ms after the start of the "
                       f"last failed try), state polled every {POLL_EVERY_S * 1000:.0f} ms")]  # fmt: skip


def _one_start(api: httpx.Client, url: str, name: str) -> dict:
    seen: dict[str, float] = {}
    done = threading.Event()

    def poll_state() -> None:
        with httpx.Client(base_url=url, trust_env=False, timeout=5) as client:
            while not done.is_set():
                server = client.get(f"/api/servers/{name}").json()
                if server["port"]:
                    seen.setdefault("port", server["port"])
                if server["state"] == "ready":
                    seen["ready"] = time.monotonic()
                    return
                if server["state"] in ("failed", "stopped", "crashed") and "port" in seen:
                    return
                time.sleep(POLL_EVERY_S)

    def probe() -> None:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        while "port" not in seen and not done.is_set():
            time.sleep(0.002)
        direct, last_try = f"http://127.0.0.1:{seen.get('port', 0):.0f}/v1/chat/completions", time.monotonic()
        with httpx.Client(trust_env=False, timeout=30) as client:
            while not done.is_set():
                tried = time.monotonic()
                with contextlib.suppress(httpx.TransportError):
                    if client.post(direct, json=body).status_code == 200:
                        seen["direct"] = time.monotonic()
                        seen["gap"] = seen["direct"] - last_try
                        return
                last_try = tried
                time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - tried)))

    threads = [threading.Thread(target=poll_state), threading.Thread(target=probe)]
    spawned = time.monotonic()
    answer = api.post(f"/api/servers/{name}/start", params={"wait": "false"})
    assert answer.status_code == 202, answer.text
    for thread in threads:
        thread.start()
    threads[0].join(60)
    deadline = time.monotonic() + 10
    while "direct" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    done.set()
    for thread in threads:
        thread.join(40)
    if "ready" not in seen or "direct" not in seen:
        raise RuntimeError(f"the server did not become ready (seen: {sorted(seen)})")
    return {"latency_ms": (seen["ready"] - seen["direct"]) * 1000, "load_s": seen["direct"] - spawned,
            "probe_gap_ms": seen["gap"] * 1000}  # fmt: skip


# ----- websocket bytes for a 1,000-token reply -------------------------------------------------------------
def bench_ws_reply() -> list[dict]:
    from tests.harness.browser import find_marked, new_driver, quit_driver, wait_for
    from tests.harness.models import build_scripted

    rows = []
    with _session("reply") as (tmp, app, api):
        for name in ("fast", "slowed"):
            model = build_scripted(tmp / name, list(PROSE), endless=True)
            _add_profile(api, name, _slowed(model, SLOW_LAYERS) if name == "slowed" else model,
                         max_tokens=REPLY_TOKENS)  # fmt: skip
            _start(api, name)
        driver = new_driver(performance_log=True)
        try:
            driver.get(f"{app.url}/")  # NiceGUI's scripts into the browser cache
            for name in ("fast", "slowed"):
                driver.get(f"{app.url}/chat?server={name}")
                box = wait_for(lambda: find_marked(driver, "message-input"), what="the composer")
                time.sleep(1.0)
                _ws_bytes(driver)  # only what the reply costs counts
                box.send_keys("Tell me about servers\n")
                wait_for(lambda: _last_status(driver) == "complete", timeout=80, what="the finished reply")
                time.sleep(1.0)  # the final render and the sidebar refresh
                rows.append(_reply_row(name, _ws_bytes(driver), app.home))
        finally:
            quit_driver(driver)
    return rows


def _last_status(driver) -> str:
    """The last reply's status: "streaming", then "complete", "partial" or "failed"."""
    replies = driver.find_elements("css selector", '[data-testid="message-assistant"]')
    return (replies[-1].get_attribute("data-status") or "") if replies else ""


def _reply_row(name: str, got: dict[str, int], home: Path) -> dict:
    with sqlite3.connect(home / "mlxui.sqlite3") as conn:
        content, metrics = conn.execute(
            "select content, metrics from messages where role = 'assistant' order by id desc limit 1"
        ).fetchone()
    metrics = json.loads(metrics)
    tokens, rate = metrics.get("completion_tokens") or 0, metrics.get("tokens_per_s") or 0
    speed = "the tiny model's own speed" if name == "fast" else f"slowed by {SLOW_LAYERS} zero-output layers"
    return row(f"websocket bytes for a 1,000-token reply, {name} model",
               got["received"] / tokens * REPLY_TOKENS if tokens else None, "B", GOAL_REPLY_B, better="lower",
               detail=f"{rate:.0f} tok/s ({speed}): {got['received']:,} B in {got['received_frames']} frames "
                      f"received for {tokens} completion tokens ({len(content):,} characters in "
                      f"{metrics.get('total_s') or 0:.1f} s, a paragraph break every {len(PROSE)} tokens); "
                      f"sent {got['sent']:,} B")  # fmt: skip


def _slowed(folder: Path, extra: int) -> Path:
    """Copy layer 0 (its attention and MLP outputs are zero) `extra` times: the same reply, slower."""
    import mlx.core as mx

    weights = mx.load(str(folder / "model.safetensors"))
    prefix = "model.layers.0."
    layer0 = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
    for i in range(1, extra + 1):
        weights.update({f"model.layers.{i}.{k}": v for k, v in layer0.items()})
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": extra + 1}, indent=2))
    return folder


# ----- helpers -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _session(label: str) -> Iterator[tuple[Path, object, httpx.Client]]:
    """A temp dir, the real app on it, an API client; afterwards every process it started is gone."""
    from tests.harness.app_process import running_app

    with tempfile.TemporaryDirectory(prefix=f"mlxui-bench-{label}-") as tmp_name:
        tmp, children = Path(tmp_name), []
        try:
            with running_app(tmp / "home", env={"HF_HUB_CACHE": str(tmp / "hf-cache")}) as app:
                with httpx.Client(base_url=app.url, timeout=90, trust_env=False) as api:
                    try:
                        yield tmp, app, api
                    finally:
                        children = _children(app.pid)
                        with contextlib.suppress(httpx.HTTPError):
                            api.post("/api/servers/stop-all")
        finally:
            _reap(children)


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _reap(processes: list[psutil.Process]) -> None:
    """Once the app has stopped, none of its children may be left: kill any by pid, and say so."""
    left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for proc in left:
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGKILL)
    if left:
        raise RuntimeError(f"processes outlived the app and were killed: {[p.pid for p in left]}")


def _add_profile(api: httpx.Client, name: str, model: Path, **settings) -> None:
    answer = api.post("/api/profiles", json={"name": name, "model": str(model), **settings})
    assert answer.status_code == 201, answer.text


def _start(api: httpx.Client, name: str) -> None:
    answer = api.post(f"/api/servers/{name}/start")
    assert answer.status_code == 200, answer.text


def _ws_bytes(driver) -> dict[str, int]:
    """Websocket payload bytes and frames since the last call, from Chromium's performance log."""
    got = dict.fromkeys(("received", "received_frames", "sent", "sent_frames", "polls"), 0)
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message["method"], message.get("params", {})
        if method in (WS_RECEIVED, WS_SENT):
            frame, key = params["response"], "received" if method == WS_RECEIVED else "sent"
            data = frame["payloadData"]  # text as is; a binary frame (opcode 2) as base64
            got[key] += len(base64.b64decode(data)) if frame.get("opcode") == 2 else len(data.encode())
            got[f"{key}_frames"] += 1
        elif method == "Network.requestWillBeSent" and "transport=polling" in params["request"]["url"]:
            got["polls"] += 1  # socket.io fell back to long polling: those bytes would be missed
    return got


BENCHES = {
    "cold-start": bench_cold_start,
    "idle": lambda: _tiles_session()["idle"],
    "readiness-latency": bench_readiness,
    "ws-tile": lambda: _tiles_session()["ws-tile"],
    "ws-reply": bench_ws_reply,
}

if __name__ == "__main__":
    print_rows([r for name in sys.argv[1:] or BENCHES for r in BENCHES[name]()])
