"""Settings page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.ui.components.empty_state import EmptyState
from mlxui.ui.frame import frame
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.app import Services


async def build(services: Services) -> None:
    with frame(services, "/settings"):
        testid(ui.label("Settings").classes("text-2xl font-semibold"), "page-title")
        EmptyState(
            "settings",
            "Settings",
            "Port, Hugging Face token, cache location and start-up behaviour will be set here.",
        )
