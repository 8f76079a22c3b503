"""The Servers page with real mlx_lm servers: profiles with field errors, start, live tile, stop."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing.user import User

from mlxui.servers.state import ServerState
from mlxui.ui.components.server_tile import ServerTile
from tests.harness.models import UNLOADABLE_ERROR, build_unloadable


@pytest.fixture
def servers_env(mlxui_home, hub_cache, monkeypatch) -> str:
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache.cache_dir))
    return hub_cache.repos["plain"]


async def wait_until(check, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def supervisor(user: User):
    from nicegui import app

    return next(h.__self__ for h in app._startup_handlers if hasattr(h, "__self__")).supervisor  # noqa: SLF001


async def test_profile_editor_shows_field_errors_then_saves(servers_env, user: User) -> None:
    await user.open(f"/servers?model={servers_env}")
    await user.should_see(marker="profile-save")
    user.find(marker="profile-name").clear().type("bad name!")
    user.find(marker="profile-port").clear().type("80")
    user.find(marker="profile-save").click()
    await wait_until(lambda: user.find(marker="profile-name").elements.pop().error)
    assert user.find(marker="profile-port").elements.pop().error
    user.find(marker="profile-name").clear().type("plain")
    user.find(marker="profile-port").clear()
    user.find(marker="profile-save").click()
    await user.should_see(marker="profile-row-plain")
    picker = user.find(marker="profile-picker").elements.pop()
    assert "plain" in picker.options


async def test_start_shows_a_live_tile_and_stop_returns_it(servers_env, user: User) -> None:
    await user.open(f"/servers?model={servers_env}")
    user.find(marker="profile-name").clear().type("live")
    user.find(marker="profile-save").click()
    await user.should_see(marker="start-live")
    user.find(marker="start-live").click()
    sup = supervisor(user)
    await wait_until(lambda: sup.get("live").state == ServerState.READY)
    await user.should_see(marker="server-tile-live")
    pid = sup.get("live").pid
    memory = user.find(marker="rss_bytes-live").elements.pop()
    await wait_until(lambda: memory.text.endswith("MB"), timeout=10)  # sampled from the real process tree
    gpu = user.find(marker="gpu_util-live").elements.pop()
    assert gpu.text == "n/a", "no GPU here: never a fake 0"
    tiles = [t for t in user.find(ServerTile).elements if not t.is_deleted]
    assert [t.server.name for t in tiles] == ["live"]
    address = user.find(marker="gateway-address-live").elements.pop().text
    assert address.endswith("/v1 · model live"), "the stable gateway address, not the backend port"
    user.find(marker="copy-address-live").click()
    await user.should_see("use it with model 'live'")
    user.find(marker="stop-live").click()
    await wait_until(lambda: sup.get("live").state == ServerState.STOPPED)
    await user.should_see(marker="profile-row-live")
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_bad_model_folder_fails_with_the_log_tail(servers_env, user: User, tmp_path) -> None:
    broken = build_unloadable(tmp_path / "broken-model")
    await user.open(f"/servers?model={broken}")
    user.find(marker="profile-name").clear().type("broken")
    user.find(marker="profile-save").click()
    await user.should_see(marker="start-broken")
    user.find(marker="start-broken").click()
    sup = supervisor(user)
    await wait_until(lambda: sup.get("broken").state == ServerState.FAILED, timeout=60)
    error = user.find(marker="error-broken").elements.pop()
    await wait_until(lambda: bool(error.text), timeout=5)
    assert UNLOADABLE_ERROR in error.text, error.text
    assert isinstance(error, ui.label)


@pytest.mark.browser
def test_tiles_update_while_scroll_and_open_dropdown_stay_put(hub_cache, chrome, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    from tests.harness.app_process import running_app
    from tests.harness.browser import find_marked, screenshot, wait_for

    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir)}
    with running_app(tmp_path / "home", env=env) as app:
        chrome.set_window_size(1400, 700)
        chrome.get(f"{app.url}/servers?model={hub_cache.repos['plain']}")
        wait_for(lambda: find_marked(chrome, "profile-save")).click()
        start = wait_for(lambda: find_marked(chrome, "start-scripted-plain"), what="profile row")
        chrome.execute_script("arguments[0].scrollIntoView(); arguments[0].click()", start)
        uptime_label = wait_for(lambda: find_marked(chrome, "server-tile-scripted-plain"), timeout=60)
        wait_for(
            lambda: "ready" in find_marked(chrome, "state-scripted-plain").text, timeout=60, what="ready"
        )
        wait_for(lambda: "MB" in find_marked(chrome, "rss_bytes-scripted-plain").text, what="memory sampled")
        chrome.execute_script("window.scrollTo(0, 120)")
        scroll_y = chrome.execute_script("return window.scrollY")
        find_marked(chrome, "profile-picker").click()
        wait_for(lambda: chrome.find_elements(By.CSS_SELECTOR, ".q-menu"), what="dropdown open")
        before = uptime_label.text
        wait_for(lambda: uptime_label.text != before, timeout=10, what="tile updates")
        after_first = uptime_label.text
        wait_for(lambda: uptime_label.text != after_first, timeout=10, what="tile keeps updating")
        assert chrome.find_elements(By.CSS_SELECTOR, ".q-menu"), "the open dropdown stays open"
        assert chrome.execute_script("return window.scrollY") == scroll_y, "scroll position stays put"
        # a request through the gateway shows up in the tile's counters within a sampler tick or two
        import httpx

        body = {"model": "scripted-plain", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        answer = httpx.post(f"{app.url}/v1/chat/completions", json=body, timeout=60).json()
        usage = answer["usage"]
        tile = find_marked(chrome, "server-tile-scripted-plain")
        expected = f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens"
        wait_for(lambda: expected in tile.text and "1 request" in tile.text, timeout=5, what="counters")
        screenshot(chrome, "servers-running")
        chrome.set_window_size(1400, 900)


async def test_deleting_a_model_a_server_uses_is_refused(servers_env, user: User, hub_cache) -> None:
    await user.open(f"/servers?model={servers_env}")
    user.find(marker="profile-name").clear().type("user-of-model")
    user.find(marker="profile-save").click()
    await user.should_see(marker="start-user-of-model")
    user.find(marker="start-user-of-model").click()
    sup = supervisor(user)
    await wait_until(lambda: sup.get("user-of-model").state == ServerState.READY)
    await user.open("/models?tab=local")
    await user.should_see(marker=f"local-model-{servers_env}")
    row = user.find(marker=f"local-model-{servers_env}").elements.pop()
    delete = next(e for e in row.descendants() if "delete-model" in e._markers)  # noqa: SLF001
    user_click(user, delete)
    await user.should_see(marker="confirm-delete")
    user.find(marker="confirm-delete").click()
    await wait_until(lambda: any("in use by the server" in m for m in user.notify.messages), timeout=10)
    assert (hub_cache.cache_dir / ("models--" + servers_env.replace("/", "--"))).exists(), "nothing deleted"
    await sup.stop("user-of-model")


def user_click(user: User, element) -> None:
    from nicegui.testing.user_interaction import UserInteraction

    UserInteraction(user, {element}, None).click()
