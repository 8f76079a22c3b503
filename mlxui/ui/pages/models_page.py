"""Models page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.ui.components.empty_state import EmptyState
from mlxui.ui.frame import frame
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.app import Services


async def build(services: Services) -> None:
    with frame(services, "/models"):
        testid(ui.label("Models").classes("text-2xl font-semibold"), "page-title")
        EmptyState(
            "view_in_ar",
            "No models yet",
            "Search the Hugging Face Hub for MLX models, see what each can do and whether it fits in memory, and download it with progress that survives restarts.",
        )
