"""Peers in Chromium (issue 17, item 3): a machine added on the Settings page shows up with its model
count and down once it stops, without a reload; the Chat picker groups its models under its name,
and a chat with one of them streams its reply through this app."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.harness import procguard
from tests.harness.app_process import start_app
from tests.harness.browser import find_marked, screenshot, wait_for
from tests.harness.models import PLAIN_REPLY
from tests.test_chat_models import messages_text, open_picker, send

pytestmark = pytest.mark.browser
PEER_MODEL = "studio/mlxui-test/scripted-plain"


@pytest.fixture
def two_apps(hub_cache, tmp_path: Path):
    b = start_app(tmp_path / "b", env={"HF_HUB_CACHE": str(hub_cache.cache_dir)})
    procguard.keep(b.pid)
    a = None
    try:
        a = start_app(tmp_path / "a", env={"HF_HUB_CACHE": str(tmp_path / "a-cache")})
        procguard.keep(a.pid)
        yield a, b
    finally:
        for app in (a, b):
            if app is not None:
                if app.process.poll() is None:
                    httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
                app.stop()
                procguard.release(app.pid)


def test_settings_card_and_chat_picker_show_the_peer(two_apps, chrome) -> None:
    a, b = two_apps
    chrome.get(f"{a.url}/settings")
    wait_for(lambda: find_marked(chrome, "peer-none"), timeout=20, what="the empty peers card")
    find_marked(chrome, "peer-url").send_keys(b.url)
    find_marked(chrome, "peer-name").send_keys("studio")
    find_marked(chrome, "peer-add").click()
    state = wait_for(lambda: find_marked(chrome, "peer-state-studio"), timeout=10, what="the peer's row")
    wait_for(lambda: state.text.startswith("up, 6 models"), timeout=10, what="the peer up")
    chrome.execute_script("arguments[0].scrollIntoView({block: 'center'})", state)
    screenshot(chrome, "settings-peers")

    chrome.get(f"{a.url}/chat")
    wait_for(lambda: find_marked(chrome, "model-picker"), timeout=20, what="picker")
    open_picker(chrome)
    group = wait_for(lambda: find_marked(chrome, "model-group-peer-studio"), what="the peer's group")
    assert group.text.casefold() == "on studio"
    option = find_marked(chrome, f"model-option-{PEER_MODEL}")
    assert "on studio" in option.text
    screenshot(chrome, "chat-picker-peer")
    option.click()
    wait_for(lambda: "on studio" in find_marked(chrome, "model-picker").text, what="the peer model chosen")
    send(chrome, "hello from a")
    wait_for(lambda: PLAIN_REPLY in messages_text(chrome), timeout=60, what="the reply via the peer")
    screenshot(chrome, "chat-peer-reply")
    with sqlite3.connect(Path(a.home) / "mlxui.sqlite3") as conn:
        assert conn.execute("SELECT profile_id, model FROM chats").fetchall() == [(None, PEER_MODEL)]

    chrome.get(f"{a.url}/settings")
    state = wait_for(lambda: find_marked(chrome, "peer-state-studio"), timeout=20, what="the peer's row")
    wait_for(lambda: state.text.startswith("up"), timeout=5, what="up")
    chrome.execute_script("arguments[0].scrollIntoView({block: 'center'})", state)
    httpx.post(f"{b.url}/api/servers/stop-all", timeout=60)
    b.process.kill()  # by pid
    b.process.wait(10)
    wait_for(lambda: state.text.startswith("down"), timeout=3, what="shown down on the open page")
    assert chrome.find_elements(By.CSS_SELECTOR, '[data-testid="peer-state-studio"]')[0].text.startswith(
        "down"
    )
    screenshot(chrome, "settings-peers-down")
