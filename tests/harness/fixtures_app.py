"""Fixtures: a temp MLXUI_HOME, the app in-process (NiceGUI `user`), the app as a real process,
and a real Chromium."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from tests.harness import procguard
from tests.harness.app_process import AppProcess, running_app
from tests.harness.browser import chromium_paths, new_driver, quit_driver

APP_MAIN = Path(__file__).with_name("app_main.py")


@pytest.fixture
def mlxui_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data dir; the in-process app and the CLI read it from MLXUI_HOME."""
    home = tmp_path / "mlxui-home"
    monkeypatch.setenv("MLXUI_HOME", str(home))
    monkeypatch.setenv("MLXUI_ALLOWED_HOSTS", "test")  # NiceGUI's simulated client calls http://test
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("MLXUI_OLLAMA_PORT", "0")  # the Ollama API's listener stays off
    return home


@pytest.fixture
async def user(mlxui_home: Path) -> AsyncIterator[User]:
    """NiceGUI's simulated user on the real app (no browser)."""
    async with user_simulation(main_file=APP_MAIN) as simulated:
        yield simulated


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[AppProcess]:
    """The real app as a child process on a free port, with its own data dir."""
    with running_app(tmp_path / "app-home", env={"HF_HUB_CACHE": str(tmp_path / "hf-cache")}) as app:
        yield app


BROWSER_MISSING = "chromium and chromium-driver are not installed"


@pytest.fixture(scope="session")
def chrome():
    """One headless Chromium for the session (tests navigate it where they need)."""
    if chromium_paths() is None and os.environ.get("CI") != "true":
        pytest.skip(BROWSER_MISSING)
    driver = new_driver()
    procguard.keep(driver.service.process.pid)
    yield driver
    pid = driver.service.process.pid
    quit_driver(driver)
    procguard.release(pid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A missing Chromium skips every browser test with one quiet "s" each: say it loudly, since
    then none of the pages was tested."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if BROWSER_MISSING in _skip_reason(r)]
    if skipped:
        count = "1 test needs" if len(skipped) == 1 else f"{len(skipped)} tests need"
        terminalreporter.write_sep(
            "!",
            f"BROWSER TESTS SKIPPED: {count} chromium + chromedriver (apt-get install chromium chromium-driver)",
            red=True,
            bold=True,
        )


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr  # a skip's is (path, line, "Skipped: <reason>")
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
