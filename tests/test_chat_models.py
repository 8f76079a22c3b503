"""The Chat page with models as the unit, in Chromium: any local model chosen in the picker (no
profile), started on demand; the open chat in the URL; the sidebar scoped to the model with "All";
a chat whose model is gone still reads and continues with another model (issue 13, items 4-5)."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.harness.app_process import app_env, module_app
from tests.harness.browser import find_marked, screenshot, wait_for
from tests.harness.models import PLAIN_REPLY, THINK_CONTENT, build_scripted_plain

pytestmark = pytest.mark.browser

PLAIN = "mlxui-test/scripted-plain"
THINK = "mlxui-test/scripted-think-tokens"


@pytest.fixture(scope="module")
def app(hub_cache, tmp_path_factory):
    with module_app(tmp_path_factory.mktemp("chat-models") / "home", hub_cache.cache_dir) as app:
        yield app


def state(app, name: str) -> str:
    return httpx.get(f"{app.url}/api/servers/{quote(name, safe='')}", timeout=5).json()["state"]


def send(chrome, text: str) -> None:
    """Type and send, once the composer takes keys (a closing menu may still cover it)."""
    box = wait_for(lambda: find_marked(chrome, "message-input"), timeout=20, what="composer")
    wait_for(lambda: box.send_keys(text) or True, timeout=10, what="the composer to take keys")
    box.send_keys(Keys.ENTER)


def messages_text(chrome) -> str:
    return chrome.find_element(By.CSS_SELECTOR, '[data-testid="messages"]').text


def chat_rows(chrome) -> list[str]:
    return [
        e.get_attribute("data-testid")
        for e in chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="chat-row-"]')
    ]


def db_rows(app, sql: str) -> list[tuple]:
    with sqlite3.connect(Path(app.home) / "mlxui.sqlite3") as conn:
        return conn.execute(sql).fetchall()


def open_picker(chrome):
    find_marked(chrome, "model-picker").click()
    return wait_for(lambda: find_marked(chrome, "model-filter"), what="the picker's filter")


def test_a_local_model_chats_with_no_profile_and_the_chat_lives_in_the_url(app, chrome) -> None:
    chrome.get(f"{app.url}/chat?server={quote(PLAIN, safe='')}")  # what a "Chat" button opens
    wait_for(lambda: PLAIN in find_marked(chrome, "model-picker").text, timeout=20, what="model chosen")
    # Choosing a stopped model starts it, and the page says it is loading.
    wait_for(lambda: state(app, PLAIN) in ("starting", "loading", "ready"), timeout=10, what="start on open")
    send(chrome, "hello there")
    wait_for(lambda: PLAIN_REPLY in messages_text(chrome), timeout=60, what="the reply")
    match = wait_for(lambda: re.search(r"/chat/(\d+)$", chrome.current_url), what="the chat's URL")
    chat_id = int(match[1])
    assert db_rows(app, f"SELECT profile_id, model FROM chats WHERE id = {chat_id}") == [(None, PLAIN)]
    screenshot(chrome, "chat-local-model")

    chrome.refresh()  # reload reopens the same conversation
    wait_for(lambda: PLAIN_REPLY in messages_text(chrome), timeout=20, what="the chat after reload")
    assert "hello there" in messages_text(chrome) and PLAIN in find_marked(chrome, "model-picker").text
    chrome.get(f"{app.url}/chat")  # no arguments: the last chat
    wait_for(lambda: "hello there" in messages_text(chrome), timeout=20, what="the last chat")


def test_the_picker_groups_models_and_enter_takes_the_single_match(app, chrome) -> None:
    chrome.get(f"{app.url}/chat")
    wait_for(lambda: find_marked(chrome, "model-picker"), timeout=20, what="picker")
    open_picker(chrome)
    groups = wait_for(
        lambda: chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="model-group-"]'), what="groups"
    )
    assert [g.text.casefold() for g in groups][:2] == ["running", "local models"]
    running = find_marked(chrome, f"model-option-{PLAIN}")
    local = find_marked(chrome, f"model-option-{THINK}")
    assert running.location["y"] < local.location["y"], "running models come first"
    assert "Thinking" in local.text, "capability badges in the picker"
    screenshot(chrome, "chat-model-picker")

    field = find_marked(chrome, "model-filter")  # the menu is still open
    field.send_keys("think-tok")
    wait_for(lambda: len(chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="model-option-"]')) == 1,
             what="one match")  # fmt: skip
    field.send_keys(Keys.ENTER)
    wait_for(lambda: THINK in find_marked(chrome, "model-picker").text, what="Enter chose the match")
    wait_for(lambda: state(app, THINK) in ("starting", "loading", "ready"), timeout=10, what="start on pick")
    assert "No chats yet." in find_marked(chrome, "chat-list").text, "its own chats, not the other model's"
    send(chrome, "think")
    wait_for(lambda: THINK_CONTENT in messages_text(chrome), timeout=60, what="the reply")

    # "All" lists every chat, each with its model's name.
    find_marked(chrome, "chat-scope").find_element(By.XPATH, ".//*[text()='All']").click()
    wait_for(lambda: len(chat_rows(chrome)) >= 2, what="all chats")
    listing = find_marked(chrome, "chat-list").text
    assert "scripted-plain" in listing and "scripted-think-tokens" in listing
    httpx.post(f"{app.url}/api/servers/{quote(THINK, safe='')}/stop", timeout=30)


def test_a_chat_whose_model_is_gone_reads_and_continues_with_another(app, chrome, tmp_path: Path) -> None:
    folder = build_scripted_plain(tmp_path / "short-lived")
    env = app_env(Path(app.home), {"MLXUI_PORT": str(app.port)})
    added = subprocess.run([sys.executable, "-m", "mlxui", "models", "add", str(folder)], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert added.returncode == 0, added.stderr
    chrome.get(f"{app.url}/chat?server=short-lived")
    wait_for(
        lambda: "short-lived" in find_marked(chrome, "model-picker").text, timeout=20, what="folder model"
    )
    send(chrome, "first question")
    wait_for(lambda: PLAIN_REPLY in messages_text(chrome), timeout=60, what="the reply")
    chat_id = int(re.search(r"/chat/(\d+)$", chrome.current_url)[1])

    assert httpx.post(f"{app.url}/api/servers/short-lived/stop", timeout=30).status_code == 200
    shutil.rmtree(folder)  # the user deleted the model's folder
    wait_for(lambda: str(folder) not in httpx.get(f"{app.url}/v1/models", timeout=10).text,
             what="the app noticed (a listing rescans)")  # fmt: skip
    chrome.get(f"{app.url}/chat/{chat_id}")
    gone = wait_for(lambda: find_marked(chrome, "model-gone"), timeout=20, what="the model-gone note")
    assert "not on this machine any more" in gone.text
    assert "first question" in messages_text(chrome), "the conversation is still readable"
    screenshot(chrome, "chat-model-gone")

    open_picker(chrome).send_keys("scripted-plain")
    wait_for(lambda: len(chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="model-option-"]')) == 1,
             what="one match")  # fmt: skip
    find_marked(chrome, f"model-option-{PLAIN}").click()
    send(chrome, "second question")
    wait_for(lambda: messages_text(chrome).count(PLAIN_REPLY) == 2, timeout=60, what="continued")
    assert chrome.current_url.endswith(f"/chat/{chat_id}"), "the same chat, continued"
    assert db_rows(app, f"SELECT model FROM chats WHERE id = {chat_id}") == [(PLAIN,)]
