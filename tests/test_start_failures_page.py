"""A start that fails, begun from the Chat or the Servers page, tells the user why (real Chromium)."""

from __future__ import annotations

import shutil

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.harness.app_process import module_app
from tests.harness.browser import find_marked, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(hub_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("start-failures")
    with module_app(root / "home", hub_cache.cache_dir) as app:
        app.root = root  # type: ignore[attr-defined]
        yield app


def notifications(chrome) -> str:
    return " ".join(
        e.get_attribute("textContent") or "" for e in chrome.find_elements(By.CSS_SELECTOR, ".q-notification")
    )


def profile_of_a_deleted_folder(app, model_dirs, name: str) -> str:
    folder = app.root / name
    shutil.copytree(model_dirs.plain, folder)
    created = httpx.post(f"{app.url}/api/profiles", json={"name": name, "model": str(folder)}, timeout=30)
    assert created.status_code == 201, created.text
    shutil.rmtree(folder)
    return str(folder)


def test_a_failed_start_from_the_chat_page_is_notified(app, model_dirs, chrome) -> None:
    folder = profile_of_a_deleted_folder(app, model_dirs, "vanished")
    chrome.get(f"{app.url}/chat?server=vanished")
    wait_for(lambda: find_marked(chrome, "start-now").is_displayed(), timeout=20, what="Start now")
    find_marked(chrome, "start-now").click()
    expected = f"vanished could not start: The model folder {folder} no longer exists"
    wait_for(lambda: expected in notifications(chrome), timeout=20, what="the failure notification")
    assert httpx.get(f"{app.url}/api/servers/vanished").json()["state"] == "failed"
    assert "slot stack is empty" not in app.log_path.read_text()


def test_a_failed_start_from_the_servers_page_is_notified(app, model_dirs, chrome) -> None:
    folder = profile_of_a_deleted_folder(app, model_dirs, "moved")
    chrome.get(f"{app.url}/servers")
    picker = wait_for(lambda: find_marked(chrome, "start-bar"), timeout=20, what="start bar")
    picker.find_element(By.CSS_SELECTOR, "input").send_keys("moved\n")
    wait_for(lambda: chrome.find_element(By.XPATH, "//div[contains(@class,'q-item') and contains(., 'moved')]"),
             timeout=10, what="the option").click()  # fmt: skip
    find_marked(chrome, "start-bar").find_element(By.XPATH, ".//button[contains(., 'Start')]").click()
    expected = f"moved could not start: The model folder {folder} no longer exists"
    wait_for(lambda: expected in notifications(chrome), timeout=20, what="the failure notification")
    assert "slot stack is empty" not in app.log_path.read_text()
