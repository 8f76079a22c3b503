"""Settings page: address, Hugging Face token, servers and gateway, Ollama API, other mlxui machines,
start at login, About."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.ui.components.about_card import AboutCard
from mlxui.ui.components.autostart_card import build_autostart_card
from mlxui.ui.components.downloads_card import DownloadsCard
from mlxui.ui.components.hf_token_card import HfTokenCard
from mlxui.ui.components.network_card import NetworkCard
from mlxui.ui.components.ollama_card import OllamaCard
from mlxui.ui.components.peers_card import PeersCard
from mlxui.ui.components.server_settings_card import ServerSettingsCard
from mlxui.ui.frame import frame
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services


async def build(services: Services) -> None:
    with frame(services, "/settings"):
        testid(ui.label("Settings").classes("text-2xl font-semibold"), "page-title")
        NetworkCard(services.config)
        HfTokenCard(services.config.hf_endpoint)
        ServerSettingsCard(services.supervisor.settings, f"{services.config.base_url}/v1", services.config)
        OllamaCard(services)
        DownloadsCard(services.downloads.settings)
        PeersCard(services.peers)
        await build_autostart_card(services.config)
        AboutCard(services.config)
