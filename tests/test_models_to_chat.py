"""From download to chat, in Chromium: when a download finishes every open page says so with Chat
and Create profile; the card and the drawer switch from Download to Chat at once; the Local list
offers Chat too; card, drawer and Local list show the same parameter count; the drawer's memory
parts add up to its total; the new-profile form comes prefilled with the model's name.

Screenshots (light and dark) land in tests/artifacts/screenshots/."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

AUTHOR = "chattest"
UNITS = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


@pytest.fixture(scope="session")
def chat_repo(fake_hub_session, model_dirs) -> str:
    """A tiny llama whose config ties the output head to the embeddings."""
    repo = f"{AUTHOR}/Tiny-Llama"
    if fake_hub_session.repo(repo) is None:
        fake_hub_session.add_repo(repo, model_dirs.tiny_llama, downloads=10, tags=["mlx"])
    return repo


def notice(chrome, text: str):
    """The Quasar notification showing `text`, if one is on screen."""
    from selenium.webdriver.common.by import By

    found = [n for n in chrome.find_elements(By.CSS_SELECTOR, ".q-notification") if text in n.text]
    return found[0] if found else None


def byte_count(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+) (B|KB|MB|GB|TB)", text.strip()).groups()
    return float(number) * UNITS[unit]


def set_dark(chrome, dark: bool) -> None:
    from tests.harness.browser import find_marked, wait_for

    is_dark = "return document.body.classList.contains('body--dark')"
    if chrome.execute_script(is_dark) != dark:
        # a script click: an open dialog's backdrop covers the header
        chrome.execute_script("arguments[0].click()", find_marked(chrome, "theme-toggle"))
    wait_for(lambda: chrome.execute_script(is_dark) == dark, what=f"dark mode {dark}")


def screenshots(chrome, name: str) -> None:
    """`name`-light.png and `name`-dark.png (the app stays in light mode afterwards)."""
    import time

    from tests.harness.browser import screenshot

    for dark in (False, True):
        set_dark(chrome, dark)
        time.sleep(0.4)  # the colour transition
        screenshot(chrome, f"{name}-{'dark' if dark else 'light'}")
    set_dark(chrome, False)


@pytest.mark.browser
def test_a_finished_download_offers_chat_everywhere_in_chromium(
    fake_hub, chat_repo, chrome, tmp_path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.harness.app_process import running_app
    from tests.harness.browser import find_marked, wait_for

    repo = chat_repo
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    with running_app(tmp_path / "home", env=env) as app:
        chat_href = f"{app.url}/chat?server={repo}"
        # a second open page, elsewhere in the app
        chrome.get(f"{app.url}/settings")
        settings_tab = chrome.current_window_handle
        chrome.switch_to.new_window("tab")
        models_tab = chrome.current_window_handle
        try:
            chrome.get(f"{app.url}/models?author={AUTHOR}")
            card = wait_for(lambda: find_marked(chrome, f"model-card-{repo}"), what="the search result")
            wait_for(lambda: "Fits in memory" in card.text, what="lazy badges")
            label = next(
                b.text for b in card.find_elements(By.CSS_SELECTOR, '[data-testid="badge"]')
                if re.fullmatch(r"~?[\d.]+[KMB]", b.text)
            )  # fmt: skip
            assert not find_marked(chrome, f"chat-{repo}").is_displayed(), "no Chat before the download"
            assert not find_marked(chrome, "downloaded-badge").is_displayed()

            find_marked(chrome, f"download-{repo}").click()
            shown = wait_for(lambda: notice(chrome, f"Downloaded {repo}"), timeout=30, what="the notice")
            actions = {
                a.get_attribute("data-testid"): a.get_attribute("href")
                for a in shown.find_elements(By.CSS_SELECTOR, "[data-testid^='notice-']")
            }
            assert actions == {
                "notice-chat": chat_href,
                "notice-create-profile": f"{app.url}/servers?model={repo.replace('/', '%2F')}",
            }
            # the card is back with the badge and Chat instead of Download, without a new search
            chat = wait_for(
                lambda: find_marked(chrome, f"chat-{repo}").is_displayed(), what="Chat on the card"
            )
            chat = find_marked(chrome, f"chat-{repo}")
            assert chat.get_attribute("href") == chat_href
            assert not find_marked(chrome, f"download-{repo}").is_displayed()
            assert find_marked(chrome, "downloaded-badge").is_displayed()
            screenshots(chrome, "models-card-downloaded")

            card.find_element(By.CSS_SELECTOR, '[data-testid="details"]').click()
            drawer_chat = wait_for(lambda: find_marked(chrome, "details-chat"), what="the drawer")
            wait_for(drawer_chat.is_displayed, what="Chat in the drawer")
            assert drawer_chat.get_attribute("href") == chat_href
            assert not find_marked(chrome, "details-download").is_displayed()
            table = find_marked(chrome, "capability-table").text
            assert f"Parameters\n{label} (" in table, "the drawer shows the card's number"
            total = byte_count(find_marked(chrome, "memory-total").text)
            parts = [
                byte_count(find_marked(chrome, f"memory-{k}").text) for k in ("weights", "kv", "overhead")
            ]
            assert parts[2] > 0, "the runtime overhead is a line of its own"
            assert abs(sum(parts) - total) <= 0.15 * UNITS["MB"], (parts, total)
            screenshots(chrome, "models-drawer")
            find_marked(chrome, "close-details").click()

            find_marked(chrome, "tab-local").click()
            row = wait_for(lambda: find_marked(chrome, f"local-model-{repo}"), what="the Local row")
            wait_for(row.is_displayed, what="the Local tab")
            assert (
                row.find_element(By.CSS_SELECTOR, '[data-testid="local-chat"]').get_attribute("href")
                == chat_href
            )
            assert label in [b.text for b in row.find_elements(By.CSS_SELECTOR, '[data-testid="badge"]')]

            # the page that was open elsewhere heard about it too; its Create profile opens the form
            chrome.switch_to.window(settings_tab)
            other = wait_for(lambda: notice(chrome, f"Downloaded {repo}"), what="the notice on Settings")
            other.find_element(By.CSS_SELECTOR, '[data-testid="notice-create-profile"]').click()
            name = wait_for(lambda: find_marked(chrome, "profile-name"), what="the new-profile form")
            wait_for(lambda: name.get_attribute("value") == "Tiny-Llama", what="the name from the model")
            assert find_marked(chrome, "profile-port").get_attribute("placeholder") == "auto"
            assert (
                find_marked(chrome, "profile-temperature").get_attribute("placeholder")
                == "server default (0)"
            )
            form = chrome.find_element(By.CSS_SELECTOR, ".q-dialog").text
            assert "Conversations kept ready" in form, "prompt cache size has a hint"
            assert "drafts tokens for this one" in form, "draft model has a hint"
            screenshots(chrome, "profile-form")
        finally:
            chrome.switch_to.window(models_tab)
            chrome.close()
            chrome.switch_to.window(settings_tab)


# ----- the same, without a browser: quicker checks of what the page decides ------------------------
async def test_download_of_a_model_already_in_the_cache_says_so(hf_env, chat_repo, model_dirs, user) -> None:
    """Downloaded elsewhere (the CLI) after the page opened: Download never starts a download."""
    from tests.harness.models import as_hf_cache_repo
    from tests.test_models_page import card, wait_until

    await user.open(f"/models?author={AUTHOR}")
    await wait_until(lambda: any(c.model.repo_id == chat_repo for c in cards_of(user)))
    assert not card(user, chat_repo).downloaded
    as_hf_cache_repo(model_dirs.tiny_llama, Path(os.environ["HF_HUB_CACHE"]), chat_repo)  # the app's cache
    user.find(marker=f"download-{chat_repo}").click()
    await wait_until(lambda: any("already downloaded" in m for m in user.notify.messages))
    assert not any(m.startswith("Downloading") for m in user.notify.messages)
    assert card(user, chat_repo).downloaded, "the card offers Chat now"
    await user.should_not_see(marker=f"download-row-{chat_repo}")


async def test_a_tied_config_shows_135m_on_the_card_and_in_the_drawer(hf_env, tmp_path, user) -> None:
    """SmolLM2-135M's shape (no weights served): the estimate counts the tied embeddings once."""
    from nicegui import ui

    from tests.test_models_page import show_card, wait_until
    from tests.test_parameter_counts import SMOLLM2_CONFIG
    from tests.test_servers_page import user_click

    repo = f"{AUTHOR}/SmolLM2-135M-Instruct"
    folder = tmp_path / "smollm2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(SMOLLM2_CONFIG))
    hf_env.hub.add_repo(repo, folder, downloads=1, tags=["mlx"])
    try:
        await user.open(f"/models?author={AUTHOR}")
        await wait_until(lambda: any(c.model.repo_id == repo for c in cards_of(user)))
        shown = await show_card(user, repo)
        assert "~135M" in [b.text for b in shown.badges.descendants() if isinstance(b, ui.badge)]
        details = next(e for e in shown.descendants() if "details" in e._markers)  # noqa: SLF001
        user_click(user, details)
        await user.should_see("~135M (134,515,008, estimated)")
    finally:
        hf_env.hub.remove_repo(repo)


def cards_of(user):
    from tests.test_models_page import cards

    return cards(user)


@pytest.mark.browser
def test_two_clicks_from_a_search_result_to_an_answer(
    fake_hub, fake_hub_session, model_dirs, chrome, tmp_path
) -> None:
    """Download, then Chat: the model answers in a new chat, no profile made, no server started by hand."""
    import httpx
    from selenium.webdriver.common.keys import Keys

    from tests.harness.app_process import running_app
    from tests.harness.browser import find_marked, wait_for
    from tests.harness.models import PLAIN_REPLY

    repo = f"{AUTHOR}/Scripted-Plain"
    if fake_hub_session.repo(repo) is None:
        fake_hub_session.add_repo(repo, model_dirs.plain, downloads=5, tags=["mlx"])
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    with running_app(tmp_path / "home", env=env) as app:
        try:
            chrome.get(f"{app.url}/models?author={AUTHOR}")
            wait_for(lambda: find_marked(chrome, f"download-{repo}"), what="the search result").click()  # 1
            chat = wait_for(lambda: find_marked(chrome, f"chat-{repo}"), timeout=30, what="Chat on the card")
            wait_for(chat.is_displayed, timeout=30, what="the download to finish")
            chat.click()  # 2
            box = wait_for(lambda: find_marked(chrome, "message-input"), timeout=20, what="the chat page")
            assert repo in find_marked(chrome, "model-picker").text
            box.send_keys("hello", Keys.ENTER)
            messages = lambda: find_marked(chrome, "messages").text  # noqa: E731
            wait_for(lambda: PLAIN_REPLY in messages(), timeout=90, what="the model's answer")
            assert httpx.get(f"{app.url}/api/profiles", timeout=5).json() == []
        finally:
            chrome.get("about:blank")  # this app stops: its page must not keep reconnecting
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
