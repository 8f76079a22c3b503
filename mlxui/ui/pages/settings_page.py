"""Settings page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.ui.components.about_card import AboutCard
from mlxui.ui.components.hf_token_card import HfTokenCard
from mlxui.ui.frame import frame
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.app import Services


async def build(services: Services) -> None:
    with frame(services, "/settings"):
        testid(ui.label("Settings").classes("text-2xl font-semibold"), "page-title")
        HfTokenCard(services.config.hf_endpoint)
        AboutCard(services.config)
