"""Real Chromium (Debian's chromium + chromium-driver) driven by Selenium, plus screenshots."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, UnexpectedAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def new_driver(
    width: int = 1400, height: int = 900, *, performance_log: bool = False, extra_args: tuple[str, ...] = ()
) -> webdriver.Chrome:
    """A headless Chromium. With `performance_log`, `get_log("performance")` returns its DevTools
    Network events (websocket frames included), as scripts/bench_app.py reads them. `extra_args`
    go to Chromium as they are (e.g. `--host-resolver-rules=MAP *.test 127.0.0.1`)."""
    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    browser, driver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # An alert a page opened fails the next command (UnexpectedAlertPresentException) and is
    # dismissed, so the session's one browser stays usable for the next test.
    options.unhandled_prompt_behavior = "dismiss and notify"
    profile = tempfile.mkdtemp(prefix="mlxui-chrome-")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        *extra_args,
    ):
        options.add_argument(arg)
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.mlxui_profile_dir = profile  # type: ignore[attr-defined]
    return chrome


def quit_driver(chrome: webdriver.Chrome) -> None:
    chrome.quit()
    shutil.rmtree(getattr(chrome, "mlxui_profile_dir", ""), ignore_errors=True)


def screenshot(chrome: webdriver.Chrome, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    chrome.save_screenshot(str(path))
    return path


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll `predicate` until it returns something truthy. Errors while a page loads are retried,
    but an alert is not: a page script opened it (an XSS payload that ran), and Chromium would
    dismiss it at the next command, hiding it from the test."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except UnexpectedAlertPresentException:
            raise
        except Exception as exc:  # noqa: BLE001 - selenium raises many kinds while a page loads
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f": {last_error}" if last_error else ""))


def find_marked(chrome: webdriver.Chrome, marker: str) -> WebElement:
    """An element marked in NiceGUI with `.mark(marker)`."""
    return chrome.find_element(By.CSS_SELECTOR, f'[data-testid="{marker}"]')


# Records every element a page script could run from as it is added: an on* attribute, a
# javascript: link, a <script> carrying a `__xss` payload. Catches markup that was in the DOM only
# between two redraws of a streaming reply, whether or not its handler got to run.
_WATCH_JS = """
window.__unsafe = [];
new MutationObserver(records => {
  for (const record of records) for (const node of record.addedNodes) {
    if (node.nodeType !== 1) continue;
    for (const el of [node, ...node.querySelectorAll('*')]) {
      const handler = [...el.attributes].some(a => a.name.toLowerCase().startsWith('on'));
      const jsLink = /^\\s*javascript:/i.test(el.getAttribute('href') || '');
      const script = el.tagName === 'SCRIPT' && el.textContent.includes('__xss');
      if (handler || jsLink || script) window.__unsafe.push(el.outerHTML.slice(0, 200));
    }
  }
}).observe(document.body, {childList: true, subtree: true});
"""


def watch_for_scripts(chrome: webdriver.Chrome) -> None:
    """From now on (until the next page load), note every runnable element added to the page."""
    chrome.execute_script(_WATCH_JS)


def scripts_that_ran(chrome: webdriver.Chrome) -> tuple[object, list[str]]:
    """(`window.__xss`, the runnable elements watch_for_scripts saw): `(None, [])` when inert.
    Payloads under test set `window.__xss`, which only a script that ran can do."""
    xss, unsafe = chrome.execute_script("return [window.__xss ?? null, window.__unsafe ?? []]")
    return xss, unsafe


def assert_no_alert(chrome: webdriver.Chrome) -> None:
    try:
        alert = chrome.switch_to.alert
    except NoAlertPresentException:
        return
    raise AssertionError(f"a page script opened an alert: {alert.text}")
