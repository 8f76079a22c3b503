"""First-run walkthrough in real Chromium: search → download → profile → start → chat (thinking,
then a real model's answer, then an image on the vision model) → stop. Saves a screenshot per step
into docs/screenshots/.

Runs against a local fake Hub holding tiny test models built on the spot and the real SmolLM2-135M
converted from the wheel scripts/walkthrough fetched (nothing is downloaded during the walk).
Usage: scripts/walkthrough
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from tests.harness import models, smollm2  # noqa: E402
from tests.harness.app_process import running_app  # noqa: E402
from tests.harness.browser import find_marked, new_driver, quit_driver, wait_for  # noqa: E402
from tests.harness.fakehub import FakeHub  # noqa: E402
from tests.test_chat_page import DROP_JS, send, text_of, wait_reply_done  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
THINKER = "mlx-community/Qwen-Scripted-Thinker-4bit"
VISION = "mlx-community/Tiny-Qwen2-VL-4bit"
REAL = "mlx-community/SmolLM2-135M-Instruct-4bit"


def main() -> None:
    run(OUT, Path(tempfile.mkdtemp(prefix="mlxui-walkthrough-")))
    print(f"screenshots in {OUT}")


def run(out: Path, work: Path) -> None:
    """The whole walk against a fresh fake Hub and app under `work`; screenshots go to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    real_model = smollm2.cached_smollm2(smollm2.find_wheel())  # WheelProblem says how to get it
    with FakeHub() as hub:
        hub.add_repo(THINKER, models.build_scripted_think_tokens(work / "thinker"), downloads=5200, likes=41)
        hub.add_repo(VISION, models.build_tiny_vlm(work / "vlm"), downloads=3100, likes=17)
        hub.add_repo(REAL, real_model, downloads=4100, likes=23)
        hub.add_repo(
            "mlx-community/Scripted-Plain-8bit", models.build_scripted_plain(work / "plain"), downloads=900
        )
        for i in range(12):
            hub.add_listing_only(f"mlx-community/Example-Model-{i:02d}-4bit", downloads=500 - i * 20, likes=i)
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(work / "cache")}
        with running_app(work / "home", env=env) as app:
            chrome = new_driver(1200, 800)
            try:
                walk(chrome, app.url, hub, out)
            except Exception:
                chrome.save_screenshot(str(work / "failed.png"))
                print(f"FAILED: the page at that moment is in {work / 'failed.png'}; app log {app.log_path}")
                raise
            finally:
                httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
                quit_driver(chrome)


def shot(chrome, out: Path, name: str) -> None:
    time.sleep(0.6)  # let animations settle
    chrome.save_screenshot(str(out / f"{name}.png"))
    print("saved", name)


def walk(chrome, url: str, hub: FakeHub, out: Path) -> None:
    chrome.get(f"{url}/models")
    wait_for(lambda: find_marked(chrome, f"model-card-{THINKER}"), timeout=30, what="search results")
    wait_for(lambda: "Thinking" in find_marked(chrome, f"model-card-{THINKER}").text, what="badges")
    shot(chrome, out, "01-models")
    box = find_marked(chrome, "search-input")
    box.send_keys("qwen")
    wait_for(
        lambda: not chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="model-card-mlx-community/Example"]')
    )
    shot(chrome, out, "02-search")
    hub.throttle_bps = 6_000  # the tiny model would finish before the screenshot
    find_marked(chrome, f"download-{THINKER}").click()
    wait_for(lambda: find_marked(chrome, f"download-progress-{THINKER}"), what="download tile")
    time.sleep(1.5)
    shot(chrome, out, "03-downloading")
    hub.throttle_bps = None
    wait_for(lambda: not chrome.find_elements(By.CSS_SELECTOR, f'[data-testid="download-row-{THINKER}"]')
             or not find_marked(chrome, f"download-row-{THINKER}").is_displayed(), timeout=60, what="done")  # fmt: skip
    find_marked(chrome, "tab-local").click()
    wait_for(lambda: find_marked(chrome, f"local-model-{THINKER}"), what="local model")
    shot(chrome, out, "04-local")
    find_marked(chrome, f"local-model-{THINKER}").find_element(
        By.CSS_SELECTOR, '[data-testid="create-profile"]'
    ).click()
    wait_for(lambda: find_marked(chrome, "profile-save").is_displayed(), what="profile editor")
    shot(chrome, out, "05-profile")
    find_marked(chrome, "profile-save").click()
    name = THINKER.split("/")[1]
    start = wait_for(lambda: find_marked(chrome, f"start-{name}"), what="profile row")
    chrome.execute_script("arguments[0].click()", start)
    wait_for(lambda: "ready" in find_marked(chrome, f"state-{name}").text, timeout=60, what="ready")
    time.sleep(3)  # a few samples for the sparklines
    shot(chrome, out, "06-server")
    find_marked(chrome, f"chat-{name}").click()
    send(chrome, "What is the answer?")
    reply = wait_reply_done(chrome, timeout=90)
    assert "tok/s" in text_of(reply, "message-metrics"), text_of(reply, "message-error")
    panel = reply.find_element(By.CSS_SELECTOR, '[data-testid="thinking"] .q-item')
    chrome.execute_script("arguments[0].click()", panel)  # open the Thinking panel
    shot(chrome, out, "07-chat-thinking")
    base = chrome.current_url.split("/chat")[0]
    # a real model (SmolLM2-135M): a real answer, greedy so that it is always the same
    find_marked(chrome, "nav-models").click()
    wait_for(lambda: find_marked(chrome, f"download-{REAL}"), timeout=30).click()
    wait_for(lambda: find_marked(chrome, "tab-local").click() or find_marked(chrome, f"local-model-{REAL}"),
             timeout=60, what="real model local")  # fmt: skip
    real = REAL.split("/")[1]
    profile = {"name": real, "model": REAL, "temperature": 0.0, "max_tokens": 64}
    httpx.post(f"{base}/api/profiles", json=profile, timeout=30).raise_for_status()
    chrome.get(f"{base}/chat?server={real}")
    send(chrome, smollm2.QUESTION)
    reply = wait_reply_done(chrome, timeout=120)
    assert "Paris" in text_of(reply, "message-content"), text_of(reply, "message-error")
    shot(chrome, out, "08-chat-real")
    # the vision model: download through the CLI-equivalent API path, then chat with an image
    find_marked(chrome, "nav-models").click()
    wait_for(lambda: find_marked(chrome, f"download-{VISION}"), timeout=30).click()
    wait_for(lambda: find_marked(chrome, "tab-local").click() or find_marked(chrome, f"local-model-{VISION}"),
             timeout=60, what="vision model local")  # fmt: skip
    vision = VISION.split("/")[1]
    httpx.post(
        f"{chrome.current_url.split('/models')[0]}/api/profiles",
        json={"name": vision, "model": VISION, "max_tokens": 48},
    )
    chrome.get(f"{chrome.current_url.split('/models')[0]}/chat?server={vision}")
    wait_for(lambda: find_marked(chrome, "composer").get_attribute("data-drop-ready"), what="composer")
    chrome.execute_script(DROP_JS, "composer", "png", 0)
    wait_for(lambda: chrome.find_elements(By.CSS_SELECTOR, '[data-testid="thumbnail"]'), what="thumbnail")
    send(chrome, "Describe this picture.")
    reply = wait_reply_done(chrome, timeout=90)
    assert "tok/s" in text_of(reply, "message-metrics"), text_of(reply, "message-error")
    shot(chrome, out, "09-chat-vision")
    chrome.get(chrome.current_url.split("/chat")[0] + "/servers")
    stop = wait_for(lambda: find_marked(chrome, f"stop-{name}"), what="running tile")
    stop.click()
    wait_for(lambda: find_marked(chrome, f"profile-row-{name}"), timeout=30, what="stopped")
    shot(chrome, out, "10-stopped")


if __name__ == "__main__":
    main()
