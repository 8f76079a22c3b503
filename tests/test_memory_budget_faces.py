"""The memory budget through every face: the Settings card (simulated user and Chromium, light and
dark), `GET/PUT /api/settings` and `mlxui settings` against the real app, and MLXUI_MEMORY_BUDGET
overriding them all."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from nicegui.testing.user import User
from selenium.webdriver.common.keys import Keys

from mlxui import db
from mlxui.servers.memory_budget import GIB, MIB, default_budget, default_source, format_size, physical_memory
from tests.harness.app_process import AppProcess, app_env, running_app
from tests.harness.browser import find_marked, screenshot, wait_for


def settings_cli(
    app: AppProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlxui", "settings", *args],
        env=app_env(app.home, {"MLXUI_PORT": str(app.port), **(env or {})}),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def default_in_force() -> tuple[int, str]:
    total = physical_memory()
    return default_budget(total), default_source(total)


async def test_the_card_saves_the_budget_and_shows_the_one_in_force(user: User, mlxui_home) -> None:
    from nicegui import app as nicegui_app

    services = next(h.__self__ for h in nicegui_app._startup_handlers if hasattr(h, "__self__"))  # noqa: SLF001
    settings = services.supervisor.settings
    budget, source = default_in_force()
    await user.open("/settings")
    await user.should_see(
        marker="memory-budget-effective", content=f"In force: {format_size(budget)} ({source})"
    )

    field = user.find(marker="memory-budget")
    field.type("1.5 gb").trigger("keydown.enter")
    await user.should_see(marker="memory-budget-effective", content="In force: 1.5 GB (setting)")
    assert (
        settings.memory_budget == GIB * 3 // 2
        and await db.get_setting("servers.memory_budget") == GIB * 3 // 2
    )
    assert field.elements.pop().value == "1.5 GB", "shown the way it is written back"

    field = user.find(marker="memory-budget")
    field.clear().type("12 parsecs").trigger("blur")
    await user.should_see("'12 parsecs' is not a size")
    assert settings.memory_budget == GIB * 3 // 2, "a refused value leaves the saved one in force"

    field.clear().type("100MB").trigger("blur")
    await user.should_see("A memory budget of 100 MB is too small: give at least 256 MB.")

    await settings.save(memory_budget=512 * MIB)  # as the CLI or the API would: the card follows
    await user.should_see(marker="memory-budget-effective", content="In force: 512 MB (setting)")

    user.find(marker="memory-budget").trigger("clear")
    await user.should_see(
        marker="memory-budget-effective", content=f"In force: {format_size(budget)} ({source})"
    )
    assert settings.memory_budget is None and await db.get_setting("servers.memory_budget") is None


def test_api_and_cli_set_show_and_clear_the_budget(app_process: AppProcess) -> None:
    app = app_process
    budget, source = default_in_force()
    view = httpx.get(f"{app.url}/api/settings").json()
    assert (view["memory_budget"], view["memory_budget_bytes"], view["memory_budget_source"]) == (
        None,
        budget,
        source,
    )

    assert ok(settings_cli(app, "set", "memory-budget", "1GB")) == "memory-budget = 1 GB\n"
    view = httpx.get(f"{app.url}/api/settings").json()
    assert (view["memory_budget"], view["memory_budget_bytes"], view["memory_budget_source"]) == (
        GIB,
        GIB,
        "setting",
    )
    listed = ok(settings_cli(app, "list"))
    assert "memory-budget         1 GB\n" in listed and "memory-budget-source  setting\n" in listed

    put = httpx.put(f"{app.url}/api/settings", json={"memory_budget": 768 * MIB})
    assert put.status_code == 200 and put.json()["memory_budget_bytes"] == 768 * MIB
    put = httpx.put(f"{app.url}/api/settings", json={"memory_budget": "2 GiB"})
    assert put.status_code == 200 and put.json()["memory_budget"] == 2 * GIB

    refused = httpx.put(f"{app.url}/api/settings", json={"memory_budget": "lots", "max_running": 3})
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"]["memory_budget"].startswith("'lots' is not a size: write bytes")
    assert httpx.get(f"{app.url}/api/settings").json()["max_running"] is None, "nothing saved"
    small = settings_cli(app, "set", "memory-budget", "1MB")
    assert (small.returncode, small.stderr) == (
        2,
        "memory_budget: A memory budget of 1 MB is too small: give at least 256 MB.\n",
    )

    cleared = ok(settings_cli(app, "unset", "memory-budget"))
    assert cleared == f"memory-budget = -\n(the budget in force is {format_size(budget)}, {source})\n"
    assert httpx.get(f"{app.url}/api/settings").json()["memory_budget_source"] == source


def test_the_environment_overrides_the_setting_everywhere(tmp_path) -> None:
    env = {"MLXUI_MEMORY_BUDGET": "3GB", "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    with running_app(tmp_path / "home", env=env) as app:
        said = ok(settings_cli(app, "set", "memory-budget", "1GB", env=env))
        assert (
            said == "memory-budget = 1 GB\n(MLXUI_MEMORY_BUDGET overrides it: the budget in force is 3 GB)\n"
        )
        view = httpx.get(f"{app.url}/api/settings").json()
        assert (view["memory_budget"], view["memory_budget_bytes"], view["memory_budget_source"]) == (
            GIB,
            3 * GIB,
            "environment",
        )


@pytest.mark.browser
def test_the_card_in_chromium_light_and_dark(app_process: AppProcess, chrome) -> None:
    chrome.get_log("browser")  # drop what earlier tests left in the shared browser's log
    chrome.get(app_process.url + "/settings")
    field = wait_for(lambda: find_marked(chrome, "memory-budget"), what="memory budget field")
    chrome.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    field.send_keys("2GB")
    field.send_keys(Keys.ENTER)
    wait_for(
        lambda: find_marked(chrome, "memory-budget-effective").text == "In force: 2 GB (setting)",
        what="saved",
    )
    assert "body--dark" in chrome.find_element("tag name", "body").get_attribute("class")
    screenshot(chrome, "settings-memory-budget-dark")
    field.send_keys(" and more")
    field.send_keys(Keys.ENTER)
    wait_for(lambda: "is not a size" in chrome.find_element("tag name", "body").text, what="the refusal")
    find_marked(chrome, "theme-toggle").click()
    wait_for(
        lambda: "body--light" in chrome.find_element("tag name", "body").get_attribute("class"), what="light"
    )
    chrome.execute_script(
        "arguments[0].scrollIntoView({block: 'center'})", find_marked(chrome, "memory-budget")
    )
    screenshot(chrome, "settings-memory-budget-light")
    errors = [e for e in chrome.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
    assert httpx.get(f"{app_process.url}/api/settings").json()["memory_budget"] == 2 * GIB
