"""Issue 14's memory scheduling in the UI, on real servers: the footer and the Servers page show
budget, planned and used (bound to `Supervisor.memory`), the tile its plan and use, an eviction
is told on the victim's row and in every open page, a refused start offers "Start anyway", the
Chat page says why a start was refused, and memory pressure and a waiting start are shown.

Plans are set to 1 GiB per model (more than these tiny servers use), budgets in multiples of it."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from nicegui.testing.user import User
from selenium.webdriver.common.action_chains import ActionChains

from mlxui.servers.memory_budget import GIB, MIB
from mlxui.servers.pressure import MemoryPressure
from mlxui.servers.state import RUNNING_STATES, ServerState
from mlxui.servers.supervisor import Supervisor
from tests.harness.app_process import running_app
from tests.harness.browser import find_marked, screenshot, wait_for

PLAN = GIB


@pytest.fixture
def hub_env(mlxui_home, hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache.cache_dir))
    return hub_cache


def supervisor() -> Supervisor:
    from nicegui import app

    return next(h.__self__ for h in app._startup_handlers if hasattr(h, "__self__")).supervisor  # noqa: SLF001


async def wait_until(check, timeout: float = 30.0, what: str = "condition") -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached in time: {what}")


def marked(user: User, marker: str) -> list:
    """The live elements marked `marker`, visible or not."""
    from nicegui import ElementFilter

    with user:
        return [e for e in ElementFilter(marker=marker) if not e.is_deleted]


def text(user: User, marker: str) -> str:
    """The text of the element marked `marker` ("" when there is none yet)."""
    live = marked(user, marker)
    return str(live[-1].text) if live else ""


def _any(user: User, marker: str) -> bool:
    return bool(marked(user, marker))


async def setup_fleet(user: User, hub_cache, budget: int) -> Supervisor:
    """Open the Servers page with profiles a and b (1 GiB plans each) under `budget`."""
    await user.open("/servers")
    sup = supervisor()
    await sup.settings.save(memory_budget=budget)
    await sup.profiles.create({"name": "a", "model": hub_cache.repos["plain"]})
    await sup.profiles.create({"name": "b", "model": hub_cache.repos["think_tokens"]})
    for name in ("a", "b"):
        sup.plans.remember(name, sup.servers[name].profile.model, PLAN)
    await user.open("/servers")
    return sup


async def stop_all(sup: Supervisor) -> None:
    await asyncio.gather(*(sup.stop(s.name) for s in sup.servers.values() if s.state in RUNNING_STATES))


async def test_footer_summary_and_tile_show_budget_planned_and_used(hub_env, user: User) -> None:
    sup = await setup_fleet(user, hub_env, 3 * GIB)
    empty = "planned 0 B · using 0 B of 3 GB budget"
    await wait_until(lambda: text(user, "footer-memory-text") == f"Memory: {empty}", what="footer, idle")
    await wait_until(lambda: text(user, "memory-summary-text") == empty, what="summary, idle")
    assert text(user, "memory-summary-budget") == "Budget 3 GB (setting)"
    assert text(user, "footer-memory-budget") == "Budget 3 GB (setting)", "the footer's tooltip"
    user.find(marker="start-a").click()
    try:
        await wait_until(lambda: sup.get("a").state == ServerState.READY, what="a ready")
        await wait_until(lambda: "planned 1 GB · using " in text(user, "footer-memory-text"), what="footer")
        await wait_until(lambda: text(user, "memory-summary-text").endswith("MB of 3 GB budget"), what="used")
        assert "planned 1 GB · using " in text(user, "memory-summary-text")
        bar = user.find(marker="memory-summary-bar").elements.pop()
        assert abs(bar.value - 1 / 3) < 0.01, bar.value
        await wait_until(lambda: text(user, "plan-a").startswith("planned 1 GB, using "), what="tile plan")
        assert text(user, "plan-a").endswith("MB"), "using: the process tree's memory, sampled"
        assert not _any(user, "pinned-a"), "a is not kept loaded"
    finally:
        await stop_all(sup)


async def test_an_eviction_is_told_on_the_row_and_in_open_pages(hub_env, user: User) -> None:
    sup = await setup_fleet(user, hub_env, 3 * GIB // 2)
    await sup.start("a")
    await user.should_see(marker="server-tile-a")
    user.find(marker="start-b").click()
    try:
        await wait_until(lambda: sup.get("b").state == ServerState.READY, what="b ready")
        assert sup.get("a").state == ServerState.STOPPED, "a made room for b"
        await wait_until(lambda: text(user, "note-a") == "Stopped to make room for b", what="a's note")
        note = user.find(marker="note-a").elements.pop()
        assert "text-slate-600" in note.classes and not any("red" in c for c in note.classes), "neutral"
        await wait_until(lambda: "a was stopped to make room for b" in user.notify.messages, what="notice")
        await wait_until(lambda: "planned 1 GB" in text(user, "memory-summary-text"), what="only b planned")
    finally:
        await stop_all(sup)


async def test_a_refused_start_offers_start_anyway(hub_env, user: User) -> None:
    sup = await setup_fleet(user, hub_env, 512 * MIB)
    user.find(marker="start-a").click()
    sentence = (
        "a needs ~1 GB, and the memory budget is 512 MB: lower its context or raise the budget in Settings."
    )
    await user.should_see(sentence)
    assert sup.get("a").state == ServerState.STOPPED, "nothing started before the user insists"
    user.find(marker="confirm").click()  # "Start anyway"
    try:
        await wait_until(lambda: sup.get("a").state == ServerState.READY, what="forced start")
        await wait_until(lambda: "planned 1 GB" in text(user, "memory-summary-text"), what="over budget")
        bar = user.find(marker="memory-summary-bar").elements.pop()
        await wait_until(lambda: bar.props.get("color") == "negative", timeout=5, what="red bar")
    finally:
        await stop_all(sup)


async def test_the_chat_page_says_why_a_start_was_refused(hub_env, user: User) -> None:
    sup = await setup_fleet(user, hub_env, 512 * MIB)
    await user.open("/chat?server=a")
    await user.should_see(marker="start-now")
    user.find(marker="start-now").click()
    await wait_until(
        lambda: any("a needs ~1 GB, and the memory budget is 512 MB" in m for m in user.notify.messages),
        timeout=10,
        what="refusal notice",
    )
    assert sup.get("a").state == ServerState.STOPPED, "no force from the chat page"


async def test_pressure_and_a_waiting_start_are_shown(hub_env, user: User, monkeypatch) -> None:
    reason = "The system is running low on memory (test reading)."
    reading = MemoryPressure("warn", 1 * GIB, 16 * GIB, 0, reason)
    sup = await setup_fleet(user, hub_env, 3 * GIB)
    housekeeping = sys.modules[type(sup.housekeeper).__module__]  # the app's own module object
    monkeypatch.setattr(housekeeping, "read_pressure", lambda: reading)
    await wait_until(lambda: _any(user, "footer-memory-warn"), what="footer warns")
    assert text(user, "footer-memory-pressure") == reason, "the footer's tooltip"
    await wait_until(lambda: text(user, "memory-summary-pressure") == reason, what="summary reason")
    assert user.find(marker="memory-summary-pressure").elements.pop().parent_slot.parent.visible
    sup.scheduler.waiting[sup.get("b")] = "waiting for a to finish (memory budget 3 GB)"
    try:
        waiting = "Starting b: waiting for a to finish (memory budget 3 GB)."
        await wait_until(lambda: text(user, "memory-summary-waiting") == waiting, what="waiting sentence")
    finally:
        sup.scheduler.waiting.clear()
    await wait_until(lambda: text(user, "memory-summary-waiting") == "", what="no one waits")


@pytest.mark.browser
def test_servers_page_with_two_running_servers_light_and_dark(hub_cache, chrome, tmp_path) -> None:
    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir)}
    with running_app(tmp_path / "home", env=env) as app:
        api = httpx.Client(base_url=app.url, timeout=120)
        assert api.put("/api/settings", json={"memory_budget": "3GB"}).status_code == 200
        for name, repo, pinned in (("alpha", "plain", True), ("beta", "think_tokens", False)):
            body = {"name": name, "model": hub_cache.repos[repo], "pinned": pinned}
            assert api.post("/api/profiles", json=body).status_code == 201
            assert api.post(f"/api/servers/{name}/start").status_code == 200
        chrome.set_window_size(1400, 1000)
        chrome.get(f"{app.url}/servers")
        summary = wait_for(lambda: find_marked(chrome, "memory-summary-text"), what="summary")
        wait_for(lambda: "planned" in summary.text and "MB of 3 GB budget" in summary.text, what="used")
        footer = find_marked(chrome, "footer-memory-text")
        assert footer.text.startswith("Memory: planned ") and footer.text.endswith(" of 3 GB budget")
        assert "Keep loaded" in find_marked(chrome, "server-tile-alpha").text
        wait_for(lambda: "using" in find_marked(chrome, "plan-beta").text, what="tile plan")
        if chrome.execute_script("return document.body.classList.contains('body--dark')"):
            find_marked(chrome, "theme-toggle").click()
        wait_for(lambda: not chrome.execute_script("return document.body.classList.contains('body--dark')"))
        ActionChains(chrome).move_to_element(summary).perform()  # no hover tooltip in the picture
        screenshot(chrome, "servers-memory-light")
        find_marked(chrome, "theme-toggle").click()
        wait_for(lambda: chrome.execute_script("return document.body.classList.contains('body--dark')"))
        ActionChains(chrome).move_to_element(summary).perform()
        screenshot(chrome, "servers-memory-dark")
        api.post("/api/servers/stop-all")
        api.close()
