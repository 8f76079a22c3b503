"""The chat on a phone-sized screen, the streaming status and Stop, and keyboard and screen-reader
basics (Esc, focusable chat rows, named buttons, contrast), all in real Chromium."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.harness import procguard
from tests.harness.app_process import running_app
from tests.harness.browser import find_marked, screenshot, wait_for
from tests.harness.models import build_scripted

pytestmark = pytest.mark.browser

AUTHOR = "layouttest"
LONG_CODE_LINE = "result = compute(" + ", ".join(f"argument_{i}" for i in range(40)) + ")"
LONG_WORD = "Pneumono" + "ultramicroscopic" * 12
WIDE_TOKENS = ["Here:", "\n\n```python\n" + LONG_CODE_LINE + "\n```", "\n\n" + LONG_WORD]
STATUS = re.compile(r"^(\d+) tokens · (\d+\.\d) tok/s$")


@pytest.fixture(scope="module")
def app(hub_cache, fake_hub_session, model_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("chat-layout")
    fake_hub_session.add_repo(f"{AUTHOR}/Layout-Plain", model_dirs.plain, downloads=10, tags=["mlx"])
    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir), "HF_ENDPOINT": fake_hub_session.url,
           "HF_HUB_DISABLE_XET": "1"}  # fmt: skip
    with running_app(root / "home", env=env) as app:
        procguard.keep(app.pid)
        try:
            profiles = {"wide": build_scripted(root / "wide", WIDE_TOKENS), "plain": hub_cache.repos["plain"],
                        "endless": hub_cache.repos["endless"]}  # fmt: skip
            for name, model in profiles.items():
                body = {"name": name, "model": str(model), "max_tokens": 100_000}
                created = httpx.post(f"{app.url}/api/profiles", json=body, timeout=30)
                assert created.status_code == 201, created.text
            yield app
        finally:
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
            procguard.release(app.pid)


@pytest.fixture
def sized(chrome):
    """Set the viewport's size for one test (headless Chromium's window cannot be narrower than
    500 px, so the page's viewport is emulated); the session's browser gets its own back after."""

    def size(width: int, height: int = 900) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        assert chrome.execute_script("return window.innerWidth") == width

    yield size
    chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def set_dark(app, dark: bool) -> None:
    assert httpx.put(f"{app.url}/api/settings", json={"dark": dark}, timeout=10).status_code == 200


def send(chrome, text: str) -> None:
    box = wait_for(lambda: find_marked(chrome, "message-input"), timeout=20, what="composer")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def last_reply(chrome):
    replies = chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-assistant"]')
    return replies[-1] if replies else None


def reply_status(chrome) -> str:
    reply = last_reply(chrome)
    return (reply.get_attribute("data-status") or "") if reply else ""


def status_line(chrome) -> str:
    return last_reply(chrome).find_element(By.CSS_SELECTOR, '[data-testid="message-metrics"]').text


def drawer_shown(chrome) -> bool:
    return chrome.execute_script(
        "const r = document.querySelector('[data-esc-close]').closest('aside').getBoundingClientRect();"
        "return r.right > 10 && r.left >= -1;"
    )


def page_scrolls_sideways(chrome) -> bool:
    return chrome.execute_script("return document.documentElement.scrollWidth > window.innerWidth")


CODE_GEOMETRY_JS = """
const pre = arguments[0].querySelector('.mlxui-code pre');
const button = pre.parentElement.querySelector('[data-testid="copy-code"]').getBoundingClientRect();
const range = document.createRange(); range.selectNodeContents(pre.querySelector('code') || pre);
const overlaps = [...range.getClientRects()].some((r) => r.width > 0 && r.left < button.right
  && r.right > button.left && r.top < button.bottom && r.bottom > button.top);
const box = pre.getBoundingClientRect(), bubble = arguments[0].getBoundingClientRect();
return {overlaps, scrolls: pre.scrollWidth > pre.clientWidth + 50, inside: box.right <= bubble.right + 1,
        buttonInView: button.right <= box.right + 1 && button.left >= box.left};
"""


def test_narrow_screen_has_no_sideways_scroll_and_the_list_is_a_drawer(app, chrome, sized) -> None:
    set_dark(app, False)
    sized(430)
    chrome.get(f"{app.url}/chat?server=wide")
    menu = wait_for(lambda: chrome.find_element(By.CSS_SELECTOR, 'button[aria-label="Conversations"]'))
    time.sleep(0.5)  # the drawer settles to the width
    assert not drawer_shown(chrome), "below 1024 px the chat list does not cover the chat at first"
    send(chrome, "Show me code")
    wait_for(lambda: reply_status(chrome) == "complete", timeout=60, what="the reply")
    reply = last_reply(chrome)
    assert LONG_WORD in reply.text
    wait_for(lambda: reply.find_elements(By.CSS_SELECTOR, '[data-testid="copy-code"]'), what="copy button")
    assert not page_scrolls_sideways(chrome), "a long code line or word must not widen the page"
    geometry = chrome.execute_script(CODE_GEOMETRY_JS, reply)
    assert geometry == {"overlaps": False, "scrolls": True, "inside": True, "buttonInView": True}, geometry
    word = reply.find_element(By.XPATH, f'.//p[contains(., "{LONG_WORD[:20]}")]')
    assert chrome.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", word)
    chrome.execute_script("arguments[0].querySelector('.mlxui-code pre').scrollLeft = 10000", reply)
    geometry = chrome.execute_script(CODE_GEOMETRY_JS, reply)
    assert not geometry["overlaps"] and geometry["buttonInView"], f"scrolled to the end: {geometry}"
    screenshot(chrome, "chat-430-light")
    set_dark(app, True)
    time.sleep(0.5)
    screenshot(chrome, "chat-430-dark")
    set_dark(app, False)

    menu.click()
    wait_for(lambda: drawer_shown(chrome), what="the drawer opened by the menu button")
    screenshot(chrome, "chat-430-drawer")
    chrome.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(lambda: not drawer_shown(chrome), what="Esc closes the drawer")
    # open the chat from the keyboard: the row takes focus, Enter opens it
    chrome.get(f"{app.url}/chat?server=wide")  # a fresh page shows no chat yet
    wait_for(lambda: find_marked(chrome, "chat-empty"), what="empty chat")
    chrome.find_element(By.CSS_SELECTOR, 'button[aria-label="Conversations"]').click()
    row = wait_for(
        lambda: chrome.find_element(By.CSS_SELECTOR, '[data-testid^="chat-row-"]'), what="chat row"
    )
    wait_for(lambda: drawer_shown(chrome), what="drawer open")
    assert row.get_attribute("tabindex") == "0", "Tab reaches the row"
    row.send_keys(Keys.ENTER)
    wait_for(lambda: last_reply(chrome) and LONG_WORD in last_reply(chrome).text, what="the chat opened")
    wait_for(lambda: not drawer_shown(chrome), what="the drawer steps aside for the chat")
    httpx.post(f"{app.url}/api/servers/wide/stop", timeout=30)


def test_wide_screen_shows_the_list_beside_the_chat(app, chrome, sized) -> None:
    sized(1280)
    for dark in (False, True):
        set_dark(app, dark)
        chrome.get(f"{app.url}/chat?server=wide")
        row = wait_for(lambda: chrome.find_element(By.CSS_SELECTOR, '[data-testid^="chat-row-"]'), what="row")
        row.click()
        wait_for(lambda: reply_status(chrome) == "complete", what="the chat")
        assert drawer_shown(chrome), "from 1024 px the list is beside the chat"
        assert not page_scrolls_sideways(chrome)
        find_marked(chrome, "message-input").send_keys(Keys.ESCAPE)
        time.sleep(0.4)
        assert drawer_shown(chrome), "Esc does not hide a list that covers nothing"
        screenshot(chrome, f"chat-1280-{'dark' if dark else 'light'}")
    set_dark(app, False)


def test_streaming_shows_tokens_and_rate_and_stop_is_not_an_error(app, chrome) -> None:
    assert httpx.post(f"{app.url}/api/servers/endless/start", timeout=60).status_code == 200
    chrome.get(f"{app.url}/chat?server=endless")
    send(chrome, "Go on forever")
    seen = wait_for(lambda: reply_status(chrome) == "streaming" and STATUS.match(status_line(chrome)),
                    timeout=30, what="tokens and tok/s while streaming")  # fmt: skip
    first = int(seen.group(1))
    later = wait_for(lambda: (m := STATUS.match(status_line(chrome))) and int(m.group(1)) > first + 5 and m,
                     what="the count grows")  # fmt: skip
    assert float(later.group(2)) > 0
    find_marked(chrome, "send").click()  # Send is Stop while a reply streams
    clicked = time.monotonic()
    wait_for(lambda: reply_status(chrome) == "partial", timeout=15, what="stopped")
    reply = last_reply(chrome)
    regenerate = wait_for(
        lambda: reply.find_element(By.CSS_SELECTOR, '[data-testid="regenerate"]'), timeout=10
    )
    continue_ = reply.find_element(By.CSS_SELECTOR, '[data-testid="continue"]')
    # At once with the stop, not after another round trip (generous: CI machines are busy).
    assert time.monotonic() - clicked < 10.0, "what comes next is offered with the stop"
    assert regenerate.accessible_name == "Regenerate" and continue_.accessible_name == "Continue"
    line = status_line(chrome)
    assert re.match(r"^Stopped · .*tok/s.* · \d+ tokens", line), line
    assert not reply.find_element(By.CSS_SELECTOR, '[data-testid="message-error"]').is_displayed()
    red, green, _ = chrome.execute_script(
        "return getComputedStyle(arguments[0]).color.match(/[\\d.]+/g).slice(0, 3).map(Number)",
        reply.find_element(By.CSS_SELECTOR, '[data-testid="message-metrics"]'),
    )
    assert red - green < 40, "Stopped is neutral, not an error red"
    assert chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="chat-row-"]'), "the new chat is listed"
    screenshot(chrome, "chat-stopped")
    chrome.refresh()  # the stopped reply keeps its numbers
    wait_for(lambda: chrome.find_element(By.CSS_SELECTOR, '[data-testid^="chat-row-"]'), what="list").click()
    wait_for(lambda: reply_status(chrome) == "partial", what="reloaded")
    assert re.match(r"^Stopped · .*tok/s.* · \d+ tokens", status_line(chrome)), status_line(chrome)
    replies = len(chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-assistant"]'))
    last_reply(chrome).find_element(By.CSS_SELECTOR, '[data-testid="continue"]').click()
    wait_for(lambda: len(chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-assistant"]')) > replies
             and reply_status(chrome) == "streaming", what="Continue asks for more")  # fmt: skip
    users = chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-user"]')
    assert users[-1].text.strip() == "Continue."
    find_marked(chrome, "send").click()
    wait_for(lambda: reply_status(chrome) == "partial", timeout=15, what="stopped again")
    httpx.post(f"{app.url}/api/servers/endless/stop", timeout=30)


def unnamed_buttons(chrome) -> list[str]:
    visible = chrome.find_elements(By.CSS_SELECTOR, "button, [role='button']")
    return [b.get_attribute("outerHTML")[:200] for b in visible if b.is_displayed() and not b.accessible_name]


def test_every_button_on_the_main_pages_has_a_name(app, chrome) -> None:
    set_dark(app, False)
    assert httpx.post(f"{app.url}/api/servers/plain/start", timeout=60).status_code == 200
    pages = {"/models": "page-title", f"/models?author={AUTHOR}": f"model-card-{AUTHOR}/Layout-Plain",
             "/servers": "server-tile-plain", "/chat?server=wide": "chat-row-", "/settings": "page-title"}  # fmt: skip
    for path, ready in pages.items():
        chrome.get(f"{app.url}{path}")
        wait_for(lambda r=ready: chrome.find_elements(By.CSS_SELECTOR, f'[data-testid^="{r}"]'), timeout=20,
                 what=f"{path} loaded")  # fmt: skip
        time.sleep(0.5)
        assert unnamed_buttons(chrome) == [], f"buttons without a name on {path}"
    chrome.get(f"{app.url}/chat?server=wide")
    wait_for(lambda: chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="chat-row-"]'), what="chat list")
    chrome.find_element(By.CSS_SELECTOR, '[data-testid^="chat-row-"]').click()
    wait_for(lambda: reply_status(chrome) == "complete", what="a chat with replies")
    assert unnamed_buttons(chrome) == [], "buttons without a name in an open chat"


def test_escape_closes_the_details_drawer_and_dialogs(app, chrome) -> None:
    chrome.get(f"{app.url}/models?author={AUTHOR}")
    card = wait_for(lambda: find_marked(chrome, f"model-card-{AUTHOR}/Layout-Plain"), timeout=20, what="card")
    card.find_element(By.CSS_SELECTOR, '[data-testid="details"]').click()
    close = wait_for(lambda: (c := find_marked(chrome, "close-details")).is_displayed() and c, what="details")
    chrome.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(lambda: not close.is_displayed(), what="Esc closes the details drawer")

    chrome.get(f"{app.url}/chat?server=wide")
    row = wait_for(lambda: chrome.find_element(By.CSS_SELECTOR, '[data-testid^="chat-row-"]'), what="row")
    row.find_element(By.CSS_SELECTOR, 'button[aria-label="Chat actions"]').click()
    wait_for(lambda: chrome.find_element(By.XPATH, '//div[contains(@class,"q-item")][.="Rename"]')).click()
    field = wait_for(lambda: find_marked(chrome, "rename-input"), what="rename dialog")
    field.send_keys(Keys.ESCAPE)
    wait_for(lambda: not chrome.find_elements(By.CSS_SELECTOR, ".q-dialog"), what="Esc closes the dialog")

    chrome.get(f"{app.url}/servers")
    wait_for(lambda: chrome.find_element(By.CSS_SELECTOR, 'button[aria-label="Logs"]')).click()
    wait_for(lambda: find_marked(chrome, "server-log"), what="log dialog")
    chrome.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(lambda: not chrome.find_elements(By.CSS_SELECTOR, ".q-dialog"), what="Esc closes the log")


CONTRAST_JS = """
const ctx = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
const rgba = (css) => { ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000'; ctx.fillStyle = css;
  ctx.fillRect(0, 0, 1, 1); const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data; return [r, g, b, a / 255]; };
const over = (top, below) => top.slice(0, 3).map((c, i) => c * top[3] + below[i] * (1 - top[3]));
const background = (el) => { const layers = [];
  for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
    if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { layers.push(rgba(c)); if (layers.at(-1)[3] === 1) break; } }
  return layers.reverse().reduce((below, top) => over(top, below), [255, 255, 255]); };
const luminance = (rgb) => { const [r, g, b] = rgb.map((v) => { v /= 255;
  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
return arguments[0].map((el) => { const bg = background(el), fg = over(rgba(getComputedStyle(el).color), bg);
  const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  return [el.getAttribute('data-testid') || el.textContent.trim().slice(0, 30), (hi + 0.05) / (lo + 0.05)]; });
"""


def test_light_mode_server_tile_and_footer_text_meet_aa_contrast(app, chrome) -> None:
    set_dark(app, False)
    assert httpx.post(f"{app.url}/api/servers/plain/start", timeout=60).status_code == 200
    chrome.get(f"{app.url}/servers")
    tile = wait_for(lambda: find_marked(chrome, "server-tile-plain"), timeout=20, what="tile")
    wait_for(lambda: find_marked(chrome, "rss_bytes-plain").text, what="numbers in the tile")
    texts = [e for e in tile.find_elements(By.CSS_SELECTOR, ".q-field, div, span, .nicegui-label")
             if e.text.strip() and not e.find_elements(By.XPATH, "./*")]  # fmt: skip
    texts += chrome.find_elements(By.CSS_SELECTOR, ".q-footer .nicegui-label")
    ratios = chrome.execute_script(CONTRAST_JS, texts)
    low = [(name, round(ratio, 2)) for name, ratio in ratios if ratio < 4.5]
    assert len(ratios) > 10 and low == [], f"below 4.5:1 in light mode: {low}"
    screenshot(chrome, "servers-light")
    httpx.post(f"{app.url}/api/servers/plain/stop", timeout=30)
