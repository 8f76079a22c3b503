"""Real Chromium (Debian's chromium + chromium-driver) driven by Selenium, plus screenshots."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def new_driver(width: int = 1400, height: int = 900, *, performance_log: bool = False) -> webdriver.Chrome:
    """A headless Chromium. With `performance_log`, `get_log("performance")` returns its DevTools
    Network events (websocket frames included), as scripts/bench_app.py reads them."""
    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    browser, driver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
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
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - selenium raises many kinds while a page loads
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f": {last_error}" if last_error else ""))


def find_marked(chrome: webdriver.Chrome, marker: str) -> WebElement:
    """An element marked in NiceGUI with `.mark(marker)`."""
    return chrome.find_element(By.CSS_SELECTOR, f'[data-testid="{marker}"]')
