"""Settings page: address, Hugging Face token, servers and gateway, start at login, About."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui import db
from mlxui.servers.supervisor import MAX_RUNNING_SETTING, ON_QUIT_SETTING
from mlxui.ui.components.about_card import AboutCard
from mlxui.ui.components.autostart_card import build_autostart_card
from mlxui.ui.components.hf_token_card import HfTokenCard
from mlxui.ui.components.network_card import NetworkCard
from mlxui.ui.components.server_settings_card import DEFAULT_TTL_SETTING, ServerSettingsCard
from mlxui.ui.frame import frame
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services


async def build(services: Services) -> None:
    on_quit = await db.get_setting(ON_QUIT_SETTING, "stop")
    max_running = await db.get_setting(MAX_RUNNING_SETTING, None)
    ttl = await db.get_setting(DEFAULT_TTL_SETTING, None)
    with frame(services, "/settings"):
        testid(ui.label("Settings").classes("text-2xl font-semibold"), "page-title")
        NetworkCard(services.config)
        HfTokenCard(services.config.hf_endpoint)
        ServerSettingsCard(services, on_quit=on_quit if on_quit in ("stop", "keep") else "stop",
                           max_running=max_running, ttl=ttl)  # fmt: skip
        await build_autostart_card(services.config)
        AboutCard(services.config)
