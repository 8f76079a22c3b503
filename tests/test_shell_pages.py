"""The app shell: every page renders with navigation, footer and theme; dark mode is remembered."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing.user import User

from mlxui import __version__, db
from mlxui.system.backend import detect_backend
from tests.harness.app_process import running_app
from tests.harness.browser import find_marked, screenshot, wait_for

PAGES = [("/models", "Models"), ("/servers", "Servers"), ("/chat", "Chat"), ("/settings", "Settings")]


@pytest.mark.parametrize(("path", "title"), PAGES)
async def test_every_page_renders_in_the_frame(user: User, path: str, title: str) -> None:
    await user.open(path)
    await user.should_see(marker="page-title", content=title)
    for _, nav_title in PAGES:
        await user.should_see(marker=f"nav-{nav_title.lower()}")
    await user.should_see(f"mlxui {__version__}")
    await user.should_see(f"MLX backend: {detect_backend()}")


async def test_root_goes_to_models(user: User) -> None:
    await user.open("/")
    await user.should_see(marker="page-title", content="Models")


async def test_navigation_buttons_switch_pages(user: User) -> None:
    await user.open("/models")
    user.find(marker="nav-servers").click()
    await user.should_see(marker="page-title", content="Servers")


async def test_theme_toggle_switches_and_is_saved(user: User) -> None:
    await user.open("/models")
    dark = user.find(ui.dark_mode).elements.pop()
    assert dark.value is True, "mlxui starts dark"
    user.find(marker="theme-toggle").click()
    for _ in range(50):
        if await db.get_setting("ui.dark_mode") is False:
            break
        await asyncio.sleep(0.05)
    assert dark.value is False
    assert await db.get_setting("ui.dark_mode") is False


@pytest.mark.browser
def test_dark_mode_survives_an_app_restart(tmp_path, chrome) -> None:
    home = tmp_path / "home"
    with running_app(home) as app:
        chrome.get(app.url + "/settings")
        wait_for(lambda: find_marked(chrome, "theme-toggle"), what="theme toggle")
        assert "body--dark" in chrome.find_element("tag name", "body").get_attribute("class")
        find_marked(chrome, "theme-toggle").click()
        wait_for(
            lambda: "body--light" in chrome.find_element("tag name", "body").get_attribute("class"),
            what="light mode",
        )
    with running_app(home) as app:
        chrome.get(app.url + "/models")
        wait_for(lambda: find_marked(chrome, "page-title"), what="page")
        assert "body--light" in chrome.find_element("tag name", "body").get_attribute("class")


@pytest.mark.browser
def test_pages_in_chromium_with_screenshots(app_process, chrome) -> None:
    chrome.get("about:blank")  # a page of an app an earlier test stopped would log reconnect errors
    chrome.get_log("browser")  # drop what earlier tests left in the shared browser's log
    for path, title in PAGES:
        chrome.get(app_process.url + path)
        wait_for(lambda t=title: find_marked(chrome, "page-title").text == t, what=f"{title} page")
        assert find_marked(chrome, "footer-backend").text == f"MLX backend: {detect_backend()}"
        screenshot(chrome, f"shell-{title.lower()}")
    find_marked(chrome, "nav-chat").click()
    wait_for(lambda: chrome.current_url.endswith("/chat"), what="navigation to /chat")
    errors = [e for e in chrome.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
