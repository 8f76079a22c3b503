"""The Connect dialog in real Chromium: set-ups filled with the app's address and the chosen model,
copy buttons that copy them, no stored key in the page; the README shows the same set-ups."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from mlxui.ui.connect_snippets import KEY_PLACEHOLDER, client_base_url, snippets
from tests.harness.app_process import module_app
from tests.harness.browser import find_marked, screenshot, wait_for

pytestmark = pytest.mark.browser

SECRET = "connect-secret-key-9"
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def app(hub_cache, tmp_path_factory):
    home = tmp_path_factory.mktemp("connect") / "home"
    with module_app(home, hub_cache.cache_dir) as app:
        for name in ("plain", "endless"):
            created = httpx.post(
                f"{app.url}/api/profiles", json={"name": name, "model": hub_cache.repos[name]}
            )
            assert created.status_code == 201, created.text
        assert httpx.put(f"{app.url}/api/settings", json={"gateway_key": SECRET}).status_code == 200
        yield app
        httpx.put(f"{app.url}/api/settings", json={"dark": False}, timeout=10)


def test_the_readme_shows_the_dialogs_set_ups() -> None:
    text = README.read_text()
    assert "## Connect a tool" in text
    for snippet in snippets("http://127.0.0.1:8765", "http://127.0.0.1:11434", "Qwen3-4B-4bit"):
        assert snippet.code in text, snippet.key


def test_a_wildcard_bind_is_dialled_on_loopback() -> None:
    assert client_base_url("0.0.0.0", 8765) == "http://127.0.0.1:8765"
    assert client_base_url("::1", 9000) == "http://[::1]:9000"
    assert client_base_url("192.168.1.5", 8765) == "http://192.168.1.5:8765"


def open_dialog(chrome, app) -> None:
    chrome.get(f"{app.url}/servers")
    wait_for(lambda: find_marked(chrome, "connect-open"), timeout=20, what="Connect button").click()
    wait_for(lambda: find_marked(chrome, "connect-snippet-curl").text, what="the dialog's snippets")


def snippet(chrome, key: str) -> str:
    return find_marked(chrome, f"connect-snippet-{key}").text


def choose_model(chrome, name: str) -> None:
    find_marked(chrome, "connect-model").click()
    option = wait_for(
        lambda: next(o for o in chrome.find_elements(By.CSS_SELECTOR, ".q-menu .q-item") if o.text == name),
        what=f"option {name}",
    )
    option.click()


def test_the_dialog_fills_the_set_ups_and_follows_the_model(app, chrome) -> None:
    chrome.execute_cdp_cmd("Browser.grantPermissions", {"origin": app.url,
                           "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})  # fmt: skip
    open_dialog(chrome, app)
    assert find_marked(chrome, "connect-address").text.startswith(f"Gateway: {app.url}/v1")
    assert (
        "set one" not in find_marked(chrome, "connect-key").text
        and "••••" in find_marked(chrome, "connect-key").text
    )
    choose_model(chrome, "plain")
    wait_for(lambda: 'ANTHROPIC_MODEL="plain"' in snippet(chrome, "claude-code"), what="model plain")
    claude = snippet(chrome, "claude-code")
    assert (
        f'ANTHROPIC_BASE_URL="{app.url}"' in claude and f'ANTHROPIC_AUTH_TOKEN="{KEY_PLACEHOLDER}"' in claude
    )
    assert f'base_url = "{app.url}/v1"' in snippet(chrome, "codex-config")
    assert 'wire_api = "responses"' in snippet(chrome, "codex-config")
    assert f'base_url="{app.url}/v1"' in snippet(chrome, "openai-python")
    assert f"curl {app.url}/v1/chat/completions" in snippet(chrome, "curl") and '"model": "plain"' in snippet(
        chrome, "curl"
    )
    choose_model(chrome, "endless")
    wait_for(
        lambda: 'model="endless"' in snippet(chrome, "openai-python"), what="the snippets follow the model"
    )
    for key in ("claude-code", "codex-config", "ollama", "curl"):
        assert "endless" in snippet(chrome, key) and "plain" not in snippet(chrome, key), key
    buttons = chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="connect-copy-"]')
    assert len(buttons) == 7 and all(
        (b.get_attribute("aria-label") or "").startswith("Copy the ") for b in buttons
    )
    find_marked(chrome, "connect-copy-curl").click()
    copied = wait_for(
        lambda: (
            (t := chrome.execute_async_script("navigator.clipboard.readText().then(arguments[0])"))
            and t.startswith("curl")
            and t
        ),
        what="the copied snippet",
    )
    assert copied == snippet(chrome, "curl")
    assert SECRET not in chrome.page_source, "the stored key never reaches the browser"


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_connect_dialog_screenshots(app, chrome, dark: bool) -> None:
    assert httpx.put(f"{app.url}/api/settings", json={"dark": dark}, timeout=10).status_code == 200
    open_dialog(chrome, app)
    wait_for(lambda: ("body--dark" in chrome.find_element(By.TAG_NAME, "body").get_attribute("class")) == dark,
             what="the theme")  # fmt: skip
    screenshot(chrome, f"connect-dialog-{'dark' if dark else 'light'}")
