#!/usr/bin/env python
"""Chat benchmark: how long after the user presses Stop the model server is free for the next
request. A never-ending scripted model (slowed to a real model's pace) streams into the Chat page in
headless Chromium; once text shows, Stop is clicked and, right after, a 1-token request is sent
straight to the server. mlx_lm.server answers requests in turn, so that request is answered
when the stopped generation has really ended. Baseline: the same request to the idle server.

Run alone (`.venv/bin/python scripts/bench_chat.py`) or through `scripts/bench --only chat`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "scripts")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import httpx  # noqa: E402
from bench_all import print_rows, row  # noqa: E402 - needs the sys.path set-up above
from bench_app import PROSE, SLOW_LAYERS, _add_profile, _session, _slowed, _start  # noqa: E402

ROUNDS = 3
GOAL_STOP_S = 1.0  # the chat tests hold Stop to this; the issue names no figure


def bench_stop_free() -> list[dict]:
    from tests.harness.browser import find_marked, new_driver, quit_driver, wait_for
    from tests.harness.models import build_scripted

    freed, idle = [], []
    with _session("stop") as (tmp, app, api):
        model = _slowed(build_scripted(tmp / "endless", list(PROSE), endless=True), SLOW_LAYERS)
        _add_profile(api, "endless", model, max_tokens=100_000)
        _start(api, "endless")
        server = api.get("/api/servers/endless").json()
        direct = f"http://127.0.0.1:{server['port']}/v1/chat/completions"
        one_token = {"model": str(model), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        for _ in range(ROUNDS):
            idle.append(_timed_post(direct, one_token))
        driver = new_driver()
        try:
            driver.get(f"{app.url}/chat?server=endless")
            for _ in range(ROUNDS):
                box = wait_for(lambda: find_marked(driver, "message-input"), what="the composer")
                box.send_keys("Tell me everything\n")
                wait_for(lambda: len(_last_reply(driver)) > 200, timeout=60, what="streaming text")
                clicked = time.perf_counter()
                find_marked(driver, "send").click()  # the Send button is Stop while a reply streams
                _timed_post(direct, one_token)  # answered once the stopped generation has ended
                freed.append(time.perf_counter() - clicked)
                wait_for(
                    lambda: "Stopped" in _last_error(driver), timeout=10, what="the reply marked stopped"
                )
        finally:
            quit_driver(driver)
    return [
        row("Stop click -> server free for the next request", statistics.median(freed), "s", GOAL_STOP_S,
            better="lower",
            detail=f"median of {ROUNDS}: {'/'.join(f'{s:.2f}' for s in freed)} s, including that 1-token "
                   f"request's own time, which on the idle server is {statistics.median(idle) * 1000:.0f} ms "
                   f"(median of {ROUNDS}); the model streams ~30-40 tok/s"),
    ]  # fmt: skip


def _timed_post(url: str, body: dict) -> float:
    started = time.perf_counter()
    answer = httpx.post(url, json=body, timeout=60, trust_env=False)
    answer.raise_for_status()
    return time.perf_counter() - started


def _last_reply(driver) -> str:
    replies = driver.find_elements("css selector", '[data-testid="message-assistant"]')
    return replies[-1].text if replies else ""


def _last_error(driver) -> str:
    """The last reply's status line once it has ended ("Stopped · …"); empty while it streams."""
    replies = driver.find_elements("css selector", '[data-testid="message-assistant"]')
    if not replies or replies[-1].get_attribute("data-status") == "streaming":
        return ""
    return replies[-1].find_element("css selector", '[data-testid="message-metrics"]').text


BENCHES = {"stop-free": bench_stop_free}

if __name__ == "__main__":
    print_rows([r for fn in BENCHES.values() for r in fn()])
