"""Servers page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.ui.components.empty_state import EmptyState
from mlxui.ui.frame import frame
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.app import Services


async def build(services: Services) -> None:
    with frame(services, "/servers"):
        testid(ui.label("Servers").classes("text-2xl font-semibold"), "page-title")
        EmptyState(
            "dns",
            "No servers running",
            "Create a server profile for a downloaded model and start it; live memory, CPU, GPU and tokens/s appear here.",
        )
