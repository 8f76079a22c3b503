"""Chat page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.ui.components.empty_state import EmptyState
from mlxui.ui.frame import frame
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.app import Services


async def build(services: Services) -> None:
    with frame(services, "/chat"):
        testid(ui.label("Chat").classes("text-2xl font-semibold"), "page-title")
        EmptyState(
            "forum",
            "No chats yet",
            "Start a server, then chat with it here; thinking, images and history are kept.",
        )
