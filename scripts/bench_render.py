#!/usr/bin/env python
"""Render benchmark (issue 4): 500 Hub search results in real headless Chromium against the real app.

A fake Hub holds RESULTS_ON_HUB listing-only repos under one author; the real app (its own
process) searches that author (`/models?author=...`, 30 results a page). The browser scrolls to
the bottom of the list, which brings the q-intersection sentinel into view and loads the next
page, until 500 results are in the DOM. Reported: seconds from navigation to 500 results, the
first page, the median and slowest page, and whether scrolling stayed smooth: scrollY before and
after every append (it must not move back), any backward jump the page made on its own, and the
longest gap between animation frames (a long frame is visible stutter).

Run alone (`.venv/bin/python scripts/bench_render.py`) or through `scripts/bench`.
"""

from __future__ import annotations

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

AUTHOR = "bench-render"
TARGET = 500
RESULTS_ON_HUB = 520  # more than TARGET: the 17th page still says "more", like a real search
PAGE_TIMEOUT_S = 15.0
TOTAL_TIMEOUT_S = 100.0  # the whole benchmark stays under two minutes
RESULT = '[data-testid^="lazy-"]'  # one per result, in the DOM from the moment its page arrives
CARD = '[data-testid^="model-card-"]'  # the card itself, rendered when its slot first scrolls into view

# Installed in the page once the first results are there: records any backward scroll the page
# makes on its own (we only ever scroll down) and the longest gap between animation frames.
PROBE_JS = """
const b = window.__bench = {backJumps: [], maxFrameMs: 0, lastY: window.scrollY};
window.addEventListener('scroll', () => {
  if (window.scrollY < b.lastY - 1) b.backJumps.push({from: b.lastY, to: window.scrollY});
  b.lastY = window.scrollY;
}, {passive: true});
let last = performance.now();
const frame = (now) => { b.maxFrameMs = Math.max(b.maxFrameMs, now - last); last = now; requestAnimationFrame(frame); };
requestAnimationFrame(frame);
"""


def run() -> list[dict]:
    from tests.harness.app_process import running_app
    from tests.harness.browser import new_driver, quit_driver
    from tests.harness.fakehub import FakeHub

    with tempfile.TemporaryDirectory(prefix="mlxui-bench-render-") as tmp_name, FakeHub() as hub:
        tmp = Path(tmp_name)
        for i in range(RESULTS_ON_HUB):
            hub.add_listing_only(f"{AUTHOR}/Model-{i:03d}-4bit", downloads=100_000 - i, likes=i, tags=["mlx"])
        env = {
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(tmp / "hf-home"),
            "HF_HUB_CACHE": str(tmp / "hf-cache"),
        }
        with running_app(tmp / "home", env=env) as app:
            driver = new_driver()
            try:
                driver.set_script_timeout(10)
                driver.get(f"{app.url}/")  # NiceGUI's scripts into the browser cache: measured is the page
                return _measure(driver, f"{app.url}/models?author={AUTHOR}")
            finally:
                quit_driver(driver)


def _measure(driver, url: str) -> list[dict]:
    started = time.monotonic()
    driver.get(url)
    _wait(driver, lambda n: n >= 1, "the first page of results")
    first_page_s = time.monotonic() - started
    driver.execute_script(PROBE_JS)
    pages: list[float] = []
    before: list[float] = []  # scrollY right after each scroll to the bottom ...
    after: list[float] = []  # ... and once that page has been appended, before the next scroll
    retries = 0
    while (n := _count(driver)) < TARGET:
        if time.monotonic() - started > TOTAL_TIMEOUT_S:
            raise TimeoutError(f"only {n} results after {TOTAL_TIMEOUT_S:.0f} s")
        if len(after) < len(before):
            after.append(_scroll_y(driver))
        asked = time.monotonic()
        driver.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
        y = _scroll_y(driver)
        try:
            _wait(driver, lambda m, n=n: m > n, f"the page after {n} results", timeout=PAGE_TIMEOUT_S)
        except TimeoutError:
            retries += 1  # the sentinel was not seen (scrolled before layout?): scroll again
            if retries > 3:
                raise
            continue
        pages.append(time.monotonic() - asked)
        before.append(y)
    total_s = time.monotonic() - started
    time.sleep(0.3)  # let the last append settle before reading scrollY after it
    if len(after) < len(before):
        after.append(_scroll_y(driver))
    scroll_y = list(zip(before, after, strict=True))
    probe = driver.execute_script("return window.__bench")
    cards = len(driver.find_elements("css selector", CARD))
    return _rows(first_page_s, total_s, pages, scroll_y, probe, cards, retries)


def _rows(
    first_s: float,
    total_s: float,
    pages: list[float],
    scroll_y: list[tuple[float, float]],
    probe: dict,
    cards: int,
    retries: int,
) -> list[dict]:
    # The list only grows below the viewport, so an append must never move the view back up.
    moved_back = [max(0.0, before - after) for before, after in scroll_y]
    own_jumps = [j["from"] - j["to"] for j in probe["backJumps"]]
    worst_back = max([*moved_back, *own_jumps], default=0.0)
    per_page = statistics.median(pages) if pages else None
    return [
        row(f"render {TARGET} search results", total_s, "s",
            detail=f"{len(pages) + 1} pages of 30, loaded by scrolling to the sentinel; first page "
                   f"{first_s:.2f} s after navigation; {cards} of {TARGET} cards rendered (a card renders "
                   "when it first scrolls into view)"),
        row("render: per page (median)", per_page, "s",
            detail=f"slowest {max(pages, default=0):.2f} s; scroll to the bottom -> next 30 results in the DOM"
                   + (f"; {retries} scroll(s) repeated" if retries else "")),
        row("render: scroll moved back on append", worst_back, "px", 0, better="lower",
            detail=f"scrollY before/after {len(scroll_y)} appends: "
                   + ", ".join(f"{b:.0f}->{a:.0f}" for b, a in scroll_y[:4]) + " ... "
                   + ", ".join(f"{b:.0f}->{a:.0f}" for b, a in scroll_y[-2:])
                   + f"; backward jumps by the page itself: {len(own_jumps)}"),
        row("render: longest frame while appending", probe["maxFrameMs"], "ms",
            detail="longest gap between animation frames, first page to the 500th result (headless)"),
    ]  # fmt: skip


def _scroll_y(driver) -> float:
    return float(driver.execute_script("return window.scrollY"))


def _count(driver) -> int:
    return int(driver.execute_script("return document.querySelectorAll(arguments[0]).length", RESULT))


def _wait(driver, ok, what: str, timeout: float = PAGE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not ok(_count(driver)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


BENCHES = {"render-500": run}

if __name__ == "__main__":
    print_rows(run())
