"""The Chat page end to end in Chromium against the real app: servers started on demand through
mlxui's own gateway, exact scripted replies, every thinking format, Stop, server-scoped sidebar."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.harness.app_process import module_app, start_app
from tests.harness.browser import (
    assert_no_alert,
    find_marked,
    screenshot,
    scripts_that_ran,
    wait_for,
    watch_for_scripts,
)
from tests.harness.models import PLAIN_REPLY, THINK_CONTENT, THINK_REASONING, build_scripted

pytestmark = pytest.mark.browser

HARMONY_TOKENS = ["<|channel|>analysis<|message|>", "Weighing it.", "<|end|><|start|>assistant<|channel|>final<|message|>",
                  "Yes", "!"]  # fmt: skip
OPEN_TAG_TOKENS = ["Pondering", " deeply", ".</think>", "Done", "!"]


@pytest.fixture(scope="module")
def chat_app(hub_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("chat-page")
    models = {
        "harmony": build_scripted(root / "harmony", HARMONY_TOKENS),
        "open_tag": build_scripted(root / "open-tag", OPEN_TAG_TOKENS),
        **{name: repo for name, repo in hub_cache.repos.items()},
    }
    with module_app(root / "home", hub_cache.cache_dir) as app:
        app.models = models  # type: ignore[attr-defined]
        yield app


def add_profile(app, name: str, model, **settings) -> None:
    body = {"name": name, "model": str(model), **settings}
    response = httpx.post(f"{app.url}/api/profiles", json=body, timeout=30)
    assert response.status_code in (201, 422), response.text  # 422: made by an earlier test


def db_rows(app, sql: str) -> list[tuple]:
    with sqlite3.connect(Path(app.home) / "mlxui.sqlite3") as conn:
        return conn.execute(sql).fetchall()


def send(chrome, text: str):
    box = wait_for(lambda: find_marked(chrome, "message-input"), what="composer")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def last_reply(chrome):
    replies = chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-assistant"]')
    return replies[-1] if replies else None


def wait_reply_done(chrome, timeout: float = 60):
    """Until the last reply has ended: complete, stopped ("partial") or failed."""

    def done():
        reply = last_reply(chrome)
        status = reply.get_attribute("data-status") if reply is not None else None
        return reply if status in ("complete", "partial", "failed") else None

    return wait_for(done, timeout=timeout, what="reply finished")


def text_of(reply, testid: str) -> str:
    return (
        reply.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').get_attribute("textContent").strip()
    )


def test_plain_reply_through_the_gateway_with_metrics(chat_app, chrome) -> None:
    add_profile(chat_app, "plain", chat_app.models["plain"])
    chrome.get(f"{chat_app.url}/chat?server=plain")
    send(chrome, "Hi there")
    reply = wait_reply_done(chrome)
    assert text_of(reply, "message-content") == PLAIN_REPLY
    metrics = text_of(reply, "message-metrics")
    assert "to first token" in metrics and "tok/s" in metrics and "9 completion tokens" in metrics
    rows = db_rows(chat_app, "select role, content, status from messages order by id")
    assert rows[-2:] == [("user", "Hi there", "complete"), ("assistant", PLAIN_REPLY, "complete")]
    screenshot(chrome, "chat-plain")


def test_the_newest_reply_stays_in_view_unless_the_user_scrolls_up(chat_app, chrome) -> None:
    add_profile(chat_app, "plain", chat_app.models["plain"])
    chrome.set_window_size(1200, 520)
    try:
        chrome.get(f"{chat_app.url}/chat?server=plain")
        wait_for(lambda: find_marked(chrome, "messages").get_attribute("data-autoscroll") == "1")
        for i in range(4):
            send(chrome, f"Question {i}")
            wait_for(
                lambda n=i + 1: (
                    len(chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-assistant"]')) == n
                )
            )
            reply = wait_reply_done(chrome)
            wait_for(
                lambda r=reply: chrome.execute_script(IN_VIEW_JS, r), timeout=5, what=f"reply {i} in view"
            )
        assert chrome.execute_script("return window.scrollY") > 0, "the page had to scroll"
        # reading older messages: a change inside a reply does not pull the page down
        chrome.execute_script("window.scrollTo(0, 0)")
        wait_for(lambda: chrome.execute_script("return window.scrollY") == 0, what="scrolled up")
        chrome.execute_script("arguments[0].append(document.createTextNode(' more'))",
                              reply.find_element(By.CSS_SELECTOR, '[data-testid="message-content"] p'))  # fmt: skip
        time.sleep(0.3)
        assert chrome.execute_script("return window.scrollY") == 0, "the reader's position is kept"
    finally:
        chrome.set_window_size(1400, 900)


IN_VIEW_JS = """const r = arguments[0].getBoundingClientRect();
const dock = document.querySelector('.composer-dock').getBoundingClientRect();
return r.top >= 0 && r.bottom <= dock.top + 1;"""  # above the composer, not hidden under it


def test_sidebar_lists_only_the_selected_servers_chats(chat_app, chrome) -> None:
    add_profile(chat_app, "plain", chat_app.models["plain"])
    add_profile(chat_app, "other", chat_app.models["plain"])
    chrome.get(f"{chat_app.url}/chat?server=other")
    send(chrome, "Only for other")
    wait_reply_done(chrome)
    other_chat = db_rows(chat_app, "select c.id from chats c join server_profiles p on p.id = c.profile_id "
                                   "where p.name = 'other'")[0][0]  # fmt: skip
    chrome.get(f"{chat_app.url}/chat?server=plain")
    wait_for(lambda: find_marked(chrome, "chat-list").text, what="chat list")
    assert not chrome.find_elements(By.CSS_SELECTOR, f'[data-testid="chat-row-{other_chat}"]')
    chrome.get(f"{chat_app.url}/chat?server=other")
    wait_for(
        lambda: chrome.find_elements(By.CSS_SELECTOR, f'[data-testid="chat-row-{other_chat}"]'), what="row"
    )


@pytest.mark.parametrize(
    ("model_key", "reasoning", "content"),
    [
        ("think_tokens", THINK_REASONING, THINK_CONTENT),  # delta field `reasoning`
        ("think_text", "Let me see.", "Four."),  # inline <think> tags in content
        ("harmony", "Weighing it.", "Yes!"),  # gpt-oss channels
        ("open_tag", "Pondering deeply.", "Done!"),  # prompt ended inside <think>: only </think> arrives
    ],
)
def test_thinking_shown_in_its_panel(chat_app, chrome, model_key, reasoning, content) -> None:
    name = f"t-{model_key}".replace("_", "-")
    add_profile(chat_app, name, chat_app.models[model_key])
    chrome.get(f"{chat_app.url}/chat?server={name}")
    send(chrome, "Think about it")
    reply = wait_reply_done(chrome)
    assert text_of(reply, "message-content") == content
    assert text_of(reply, "reasoning") == reasoning
    panel = reply.find_element(By.CSS_SELECTOR, '[data-testid="thinking"]')
    assert panel.is_displayed(), "the finished reply keeps its thinking panel"
    assert re.search(r"Thought (for \d+\.\d s|briefly)", panel.text), (
        f"the header says how long: {panel.text!r}"
    )
    assert not reply.find_element(By.CSS_SELECTOR, '[data-testid="reasoning"]').is_displayed(), "collapsed"
    saved = db_rows(
        chat_app, "select reasoning, content from messages where role='assistant' order by id desc"
    )[0]
    assert (saved[0].strip(), saved[1].strip()) == (reasoning, content)
    httpx.post(f"{chat_app.url}/api/servers/{name}/stop", timeout=30)


def test_stop_on_the_endless_model_frees_the_server(chat_app, chrome) -> None:
    add_profile(chat_app, "endless", chat_app.models["endless"], max_tokens=100_000)
    assert httpx.post(f"{chat_app.url}/api/servers/endless/start", timeout=60).status_code == 200
    chrome.get(f"{chat_app.url}/chat?server=endless")
    send(chrome, "Go on forever")
    wait_for(
        lambda: "la la" in (last_reply(chrome).text if last_reply(chrome) else ""),
        timeout=30,
        what="streaming",
    )
    clicked = time.monotonic()
    find_marked(chrome, "send").click()  # Send turns into Stop while a reply streams
    wait_for(lambda: last_reply(chrome).get_attribute("data-status") == "partial", timeout=5, what="stopped")
    # A broken Stop never ends the endless reply (the wait above fails); how fast it ends is
    # scripts/bench --only chat (0.47 s median). 3 s leaves room for a loaded 2-core CI machine.
    assert time.monotonic() - clicked < 3.0
    assert text_of(last_reply(chrome), "message-metrics").startswith("Stopped")
    status, content = db_rows(chat_app, "select status, content from messages where role='assistant' "
                                        "order by id desc")[0]  # fmt: skip
    assert status == "partial" and content.startswith("la la")
    port = httpx.get(f"{chat_app.url}/api/servers/endless", timeout=10).json()["port"]
    started = time.monotonic()
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                        json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 3})  # fmt: skip
    assert answer.status_code == 200 and time.monotonic() - started < 2.0, "the server is free again"
    httpx.post(f"{chat_app.url}/api/servers/endless/stop", timeout=30)


XSS_PAYLOAD = '<img src=x onerror="window.__xss=1">'
XSS_TOKENS = [XSS_PAYLOAD, " <script>window.__xss=2</script>", " [click](javascript:window.__xss=3)",
              " <svg onload=alert(4)>"]  # fmt: skip
# An endless reply: each "\n\n" ends a block that is frozen into its own element while the
# payload after it streams in the live tail, so both renderings of a streaming reply see it.
XSS_STREAM_TOKENS = [XSS_PAYLOAD, " still", " streaming", "\n\n"]
DROP_JS = """
const [testid, kind, size] = arguments;
const box = document.querySelector(`[data-testid="${testid}"]`);
let blob;
if (kind === 'png') {
  const canvas = document.createElement('canvas'); canvas.width = 64; canvas.height = 48;
  const ctx = canvas.getContext('2d'); ctx.fillStyle = '#c33'; ctx.fillRect(0, 0, 64, 48);
  const url = canvas.toDataURL('image/png'); const bytes = atob(url.split(',')[1]);
  blob = new Uint8Array([...bytes].map(c => c.charCodeAt(0)));
} else if (kind === 'fake') { blob = new TextEncoder().encode('this is not an image'); }
else { blob = new Uint8Array(size); blob.set([137, 80, 78, 71, 13, 10, 26, 10]); }
const file = new File([blob], kind + '.png', {type: 'image/png'});
const data = new DataTransfer(); data.items.add(file);
box.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
"""


def notifications(chrome) -> str:
    notes = chrome.find_elements(By.CSS_SELECTOR, ".q-notification")
    return " ".join(e.get_attribute("textContent") or "" for e in notes)


def test_vision_chat_with_a_dropped_image_and_rejected_files(chat_app, chrome) -> None:
    add_profile(chat_app, "vision", chat_app.models["vlm"])
    chrome.get(f"{chat_app.url}/chat?server=vision")
    wait_for(
        lambda: find_marked(chrome, "attach-image").is_enabled(), what="images offered for a vision model"
    )
    wait_for(
        lambda: find_marked(chrome, "composer").get_attribute("data-drop-ready") == "1",
        what="the composer listens for drops",
    )
    chrome.execute_script(DROP_JS, "composer", "fake", 0)
    wait_for(
        lambda: "not an image mlxui can send" in notifications(chrome), timeout=30, what="wrong type refused"
    )
    chrome.execute_script(DROP_JS, "composer", "huge", 11_000_000)
    wait_for(lambda: "Image too large" in notifications(chrome), timeout=30, what="oversize refused")
    assert not chrome.find_elements(By.CSS_SELECTOR, '[data-testid="thumbnail"]')
    chrome.execute_script(DROP_JS, "composer", "png", 0)
    wait_for(lambda: chrome.find_elements(By.CSS_SELECTOR, '[data-testid="thumbnail"]'), what="thumbnail")
    send(chrome, "What is in this picture?")
    reply = wait_reply_done(chrome, timeout=90)
    assert "tok/s" in text_of(reply, "message-metrics"), text_of(reply, "message-error")
    attachments = db_rows(chat_app, "select attachments from messages where role='user' order by id desc")[0][
        0
    ]
    assert json.loads(attachments)[0]["mime"] == "image/png"
    user_bubble = chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-user"] img')
    assert user_bubble, "the image is shown in the history"
    screenshot(chrome, "chat-vision")


def test_xss_in_model_output_and_titles_is_inert(chat_app, chrome, tmp_path) -> None:
    model = build_scripted(tmp_path / "xss-model", XSS_TOKENS)
    add_profile(chat_app, "xss", model)
    chrome.get(f"{chat_app.url}/chat?server=xss")
    wait_for(lambda: find_marked(chrome, "message-input"), what="composer")
    watch_for_scripts(chrome)
    payload = '<img src=x onerror="window.__xss=5"> <b>bold</b>'
    send(chrome, payload)
    reply = wait_reply_done(chrome)  # an alert opened meanwhile fails here (tests/harness/browser.py)
    shown = f"{XSS_PAYLOAD} <script>window.__xss=2</script> click <svg onload=alert(4)>"
    assert text_of(reply, "message-content") == shown, "markup is shown as text; the link is defused"
    messages = find_marked(chrome, "messages")
    assert not messages.find_elements(By.CSS_SELECTOR, "script, img, svg, b")
    assert not chrome.find_elements(By.CSS_SELECTOR, 'a[href^="javascript:"]')
    time.sleep(0.5)  # a broken image's error event comes after its failed request
    assert scripts_that_ran(chrome) == (None, [])
    assert_no_alert(chrome)
    assert find_marked(chrome, "page-title").text == payload, "the title keeps the text, not the markup"
    httpx.post(f"{chat_app.url}/api/servers/xss/stop", timeout=30)


def test_xss_in_a_reply_is_inert_while_it_streams_and_after(chat_app, chrome, tmp_path) -> None:
    model = build_scripted(tmp_path / "xss-stream-model", XSS_STREAM_TOKENS, endless=True)
    add_profile(chat_app, "xss-stream", model, max_tokens=100_000)
    assert httpx.post(f"{chat_app.url}/api/servers/xss-stream/start", timeout=60).status_code == 200
    chrome.get(f"{chat_app.url}/chat?server=xss-stream")
    wait_for(lambda: find_marked(chrome, "message-input"), what="composer")
    watch_for_scripts(chrome)
    send(chrome, "Stream it")
    wait_for(lambda: "still streaming" in (last_reply(chrome).text if last_reply(chrome) else ""),
             timeout=30, what="streaming")  # fmt: skip
    watched_until = time.monotonic() + 3.0  # many redraws of the live tail and frozen blocks
    while time.monotonic() < watched_until:
        assert scripts_that_ran(chrome) == (None, []), "markup ran while the reply streamed"
        time.sleep(0.2)
    assert last_reply(chrome).text.count(XSS_PAYLOAD) >= 2, "the payload is on the page as text"
    find_marked(chrome, "send").click()  # Stop ("Stopped" below proves it still streamed until now)
    wait_for(lambda: last_reply(chrome).get_attribute("data-status") == "partial", timeout=5, what="stopped")
    time.sleep(0.5)
    assert scripts_that_ran(chrome) == (None, []), "markup ran in the final reply"
    assert_no_alert(chrome)
    httpx.post(f"{chat_app.url}/api/servers/xss-stream/stop", timeout=30)


def test_history_survives_restart_and_kill_9_mid_reply(hub_cache, chrome, tmp_path) -> None:
    import os
    import signal

    import psutil

    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir)}
    home = tmp_path / "home"
    app = start_app(home, env=env)
    try:
        add_profile(app, "plain", hub_cache.repos["plain"])
        add_profile(app, "endless", hub_cache.repos["endless"], max_tokens=100_000)
        chrome.get(f"{app.url}/chat?server=plain")
        send(chrome, "Remember me")
        wait_reply_done(chrome)
        chat_id = db_rows(app, "select id from chats")[0][0]
        app.stop()  # a normal quit
        app = start_app(home, env=env)
        chrome.get(f"{app.url}/chat?server=plain&chat={chat_id}")
        reply = wait_reply_done(chrome)
        assert text_of(reply, "message-content") == PLAIN_REPLY
        assert "Remember me" in find_marked(chrome, "messages").text
        # now kill -9 mlxui while the endless model is answering
        chrome.get(f"{app.url}/chat?server=endless")
        send(chrome, "Talk forever")
        wait_for(lambda: "la la" in (last_reply(chrome).text if last_reply(chrome) else ""), timeout=60)
        time.sleep(2.5)  # past one autosave
        server_pid = httpx.get(f"{app.url}/api/servers/endless", timeout=10).json()["pid"]
        os.kill(app.pid, signal.SIGKILL)
        app.process.wait(10)
        psutil.Process(server_pid).kill()  # the orphaned model server, as the next start would find it
    finally:
        app.stop()
    app = start_app(home, env=env)
    try:
        rows = db_rows(app, "select role, content, status from messages order by id")
        assert rows[:2] == [("user", "Remember me", "complete"), ("assistant", PLAIN_REPLY, "complete")]
        assert rows[2][:2] == ("user", "Talk forever")
        assert rows[3][0] == "assistant" and rows[3][1].startswith("la la") and rows[3][2] == "partial"
    finally:
        app.stop()


def test_markdown_code_blocks_have_copy_and_tables_render(chat_app, chrome, tmp_path) -> None:
    tokens = [
        "Here:",
        "\n\n```python\nprint(42)\n```",
        "\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        "\n\n- one\n- two",
    ]
    add_profile(chat_app, "md", build_scripted(tmp_path / "md-model", tokens))
    chrome.execute_cdp_cmd("Browser.grantPermissions", {"origin": chat_app.url,
                           "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})  # fmt: skip
    chrome.get(f"{chat_app.url}/chat?server=md")
    send(chrome, "Show me markdown")
    reply = wait_reply_done(chrome)
    content = reply.find_element(By.CSS_SELECTOR, '[data-testid="message-content"]')
    assert content.find_elements(By.CSS_SELECTOR, "table td")[0].text == "1"
    assert [li.text for li in content.find_elements(By.CSS_SELECTOR, "li")] == ["one", "two"]
    button = wait_for(lambda: content.find_element(By.CSS_SELECTOR, '[data-testid="copy-code"]'), what="copy")
    button.click()
    wait_for(lambda: button.text == "Copied", what="copied")
    copied = chrome.execute_async_script("navigator.clipboard.readText().then(arguments[0])")
    assert copied == "print(42)"
    httpx.post(f"{chat_app.url}/api/servers/md/stop", timeout=30)
