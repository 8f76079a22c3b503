"""Settings: the Hugging Face token is checked against the Hub, stored masked, and used."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from huggingface_hub import get_token
from nicegui import ui
from nicegui.testing.user import User

from mlxui import __version__, db


async def test_token_is_checked_saved_masked_and_removed(hf_env, user: User) -> None:
    await user.open("/settings")
    await user.should_see(marker="token-current", content="No token saved.")
    user.find(marker="token-input").type("hf_wrong_token")
    user.find(marker="token-check").click()
    await user.should_see(marker="token-result", content="does not accept this token")
    assert get_token() is None
    user.find(marker="token-input").clear().type(hf_env.token)
    user.find(marker="token-save").click()
    await user.should_see(marker="token-result", content="belongs to tester")
    assert get_token() == hf_env.token
    await user.should_see(marker="token-current", content="hf_…alid")
    await user.should_not_see(hf_env.token)
    user.find(marker="token-remove").click()
    await user.should_see(marker="token-current", content="No token saved.")
    assert get_token() is None


async def test_offline_token_check_says_so(hf_env, user: User) -> None:
    hf_env.hub.offline = True
    await user.open("/settings")
    user.find(marker="token-input").type(hf_env.token)
    user.find(marker="token-check").click()
    await user.should_see(marker="token-result", content="Cannot connect")


async def test_about_lists_versions_and_places(user: User, mlxui_home) -> None:
    await user.open("/settings")
    await user.should_see("mlx-lm")
    labels = [e.text for e in user.find(kind=ui.label).elements]
    assert __version__ in labels, "mlxui's version is listed on its own"
    assert "CPU" in labels or "Metal" in labels or "CUDA" in labels
    assert str(mlxui_home) in labels


async def test_server_settings_and_gateway_key_are_saved_and_applied(user: User, mlxui_home) -> None:
    from nicegui import app as nicegui_app

    services = next(h.__self__ for h in nicegui_app._startup_handlers if hasattr(h, "__self__"))  # noqa: SLF001
    settings = services.supervisor.settings
    await user.open("/settings")
    user.find(marker="on-quit").elements.pop().value = "keep"
    user.find(marker="max-running").elements.pop().value = 2
    user.find(marker="default-ttl").elements.pop().value = 600
    user.find(marker="gateway-key").type("secret-key-123")
    user.find(marker="gateway-key-save").click()
    await user.should_see("Gateway key saved")
    assert await db.get_setting("servers.on_quit") == "keep"
    assert await db.get_setting("servers.max_running") == 2
    assert await db.get_setting("servers.default_idle_ttl") == 600
    assert await db.get_setting("gateway.api_key") == "secret-key-123"
    assert (settings.on_quit, settings.max_running, settings.default_idle_ttl) == ("keep", 2, 600)
    assert settings.gateway_key == "secret-key-123"
    await user.should_see(marker="gateway-key-status", content="A key is set (hidden)")
    assert user.find(marker="gateway-key").elements.pop().value == "", "the saved key is not shown again"

    key = user.find(marker="gateway-key")
    key.type("short")
    user.find(marker="gateway-key-save").click()
    await user.should_see("The key was not saved")
    assert key.elements.pop().error.startswith("Use 8 to 256 printable characters")
    assert settings.gateway_key == "secret-key-123", "a refused key leaves the saved one in force"

    user.find(marker="gateway-key-remove").click()
    await user.should_see("Gateway key removed")
    assert settings.gateway_key is None and await db.get_setting("gateway.api_key") is None
    await user.should_see(marker="gateway-key-status", content="No key")


async def test_a_saved_gateway_key_never_reaches_the_browser(user: User, mlxui_home) -> None:
    from nicegui import app as nicegui_app

    services = next(h.__self__ for h in nicegui_app._startup_handlers if hasattr(h, "__self__"))  # noqa: SLF001
    await user.open("/settings")  # starts the services
    await services.supervisor.settings.save(gateway_key="never-shown-key-42")
    await user.open("/settings")
    await user.should_see(marker="gateway-key-status", content="A key is set (hidden)")
    client = user.client
    assert client is not None
    sent = json.dumps([element._props for element in client.elements.values()], default=str)  # noqa: SLF001
    assert "never-shown-key-42" not in sent


async def test_address_is_saved_for_the_next_start_with_a_warning(
    user: User, mlxui_home, monkeypatch
) -> None:
    from mlxui.config import load_config

    await user.open("/settings")
    user.find(marker="host").clear().type("0.0.0.0")
    await user.should_see(marker="host-warning", content="anyone who can reach this machine")
    user.find(marker="port").elements.pop().value = 9123
    user.find(marker="network-save").click()
    await user.should_see("after a restart")
    monkeypatch.delenv("MLXUI_HOST", raising=False)
    monkeypatch.delenv("MLXUI_PORT", raising=False)
    config = load_config()
    assert (config.host, config.port) == ("0.0.0.0", 9123)
    monkeypatch.setenv("MLXUI_PORT", "9200")
    assert load_config().port == 9200, "the environment still wins"


async def test_autostart_switch_writes_the_user_unit(user: User, mlxui_home, tmp_path, monkeypatch) -> None:
    import sys
    from pathlib import Path

    if sys.platform != "linux":
        pytest.skip("the systemd path is tested on Linux; launchd has its own tests")
    fakebin = Path(__file__).parent / "fakebin"
    monkeypatch.setenv("PATH", f"{fakebin}:{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("FAKEBIN_STATE", str(tmp_path / "fake-state.json"))
    monkeypatch.setenv("FAKEBIN_LOG", str(tmp_path / "fake-calls.log"))
    await user.open("/settings")
    switch = user.find(marker="autostart-switch").elements.pop()
    assert switch.value is False
    switch.value = True
    unit = tmp_path / ".config" / "systemd" / "user" / "mlxui.service"
    for _ in range(100):
        if unit.exists():
            break
        await asyncio.sleep(0.05)
    assert "Restart=on-failure" in unit.read_text()
    await user.should_see(marker="autostart-detail", content="systemd")
