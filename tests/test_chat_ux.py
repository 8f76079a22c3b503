"""Small things a person notices in the chat, checked in real Chromium."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.harness.app_process import module_app
from tests.harness.browser import find_marked, wait_for
from tests.harness.models import PLAIN_REPLY

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(hub_cache, tmp_path_factory):
    with module_app(tmp_path_factory.mktemp("chat-ux") / "home", hub_cache.cache_dir) as app:
        created = httpx.post(
            f"{app.url}/api/profiles", json={"name": "plain", "model": hub_cache.repos["plain"]}
        )
        assert created.status_code == 201, created.text
        yield app


def test_a_multi_line_message_keeps_its_line_breaks(app, chrome) -> None:
    chrome.get(f"{app.url}/chat?server=plain")
    box = wait_for(lambda: find_marked(chrome, "message-input"), timeout=20, what="composer")
    box.send_keys("first line")
    box.send_keys(Keys.SHIFT, Keys.ENTER)  # a new line, not send
    box.send_keys("second line")
    box.send_keys(Keys.ENTER)

    def mine():
        bubbles = chrome.find_elements(
            By.CSS_SELECTOR, '[data-testid="message-user"] [data-testid="message-content"]'
        )
        return bubbles[-1] if bubbles else None

    bubble = wait_for(mine, timeout=30, what="the sent message")
    assert bubble.text == "first line\nsecond line", repr(bubble.text)
    wait_for(lambda: PLAIN_REPLY in chrome.find_element(By.CSS_SELECTOR, '[data-testid="messages"]').text,
             timeout=60, what="the reply")  # fmt: skip
    httpx.post(f"{app.url}/api/servers/plain/stop", timeout=30)
