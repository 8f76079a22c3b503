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


@pytest.fixture(scope="session")
def chrome():
    """One headless Chromium for the session (tests navigate it where they need)."""
    if chromium_paths() is None and os.environ.get("CI") != "true":
        pytest.skip("chromium and chromium-driver are not installed")
    driver = new_driver()
    procguard.keep(driver.service.process.pid)
    yield driver
    pid = driver.service.process.pid
    quit_driver(driver)
    procguard.release(pid)
