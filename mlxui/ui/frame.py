"""The frame around every page: header with navigation and theme switch, footer with status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from nicegui import ui

from mlxui import __version__
from mlxui.system.backend import detect_backend
from mlxui.ui.components.connect_dialog import connect_button
from mlxui.ui.components.download_notice import announce_finished_downloads
from mlxui.ui.components.eviction_notice import announce_evictions
from mlxui.ui.components.memory_status import MemoryStatus
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services

NAV = [
    ("Models", "/models", "view_in_ar"),
    ("Servers", "/servers", "dns"),
    ("Chat", "/chat", "forum"),
    ("Settings", "/settings", "settings"),
]


@contextmanager
def frame(services: Services, current: str) -> Iterator[ui.column]:
    """Wrap a page's content; `current` is the path of the page being shown."""
    ui.dark_mode().bind_value_from(services.appearance, "dark")
    ui.colors(primary="#7c5cff")
    announce_finished_downloads(services.downloads)
    announce_evictions(services.supervisor)
    with ui.header().classes(
        "items-center gap-2 px-4 py-2 bg-slate-900 text-white no-wrap max-sm:px-2 max-sm:gap-0"
    ):
        ui.image("/assets/icon.svg").classes("w-7 h-7 shrink-0")
        ui.label("mlxui").classes("text-lg font-semibold mr-4 max-sm:hidden")
        for title, path, icon in NAV:
            # below 640 px the icons only; the button keeps its name (aria-label) for screen readers
            with ui.button(on_click=lambda p=path: ui.navigate.to(p)).props(
                f'flat no-caps aria-label="{title}"'
            ) as button:
                ui.icon(icon, size="sm")
                ui.label(title).classes("ml-2 max-sm:hidden")
            testid(button.props(f"color={'primary' if path == current else 'white'}"), f"nav-{title.lower()}")
            if path == current:
                button.classes("bg-white/10")
        ui.space()
        connect_button(services)
        _theme_switch(services)
    with ui.footer().classes("px-4 py-1 text-xs bg-slate-900 text-slate-300 flex-wrap"):
        testid(ui.label(f"mlxui {__version__}"), "footer-version")
        ui.label("·")
        testid(ui.label(f"MLX backend: {detect_backend()}"), "footer-backend")
        ui.label("·")
        MemoryStatus(services.supervisor.memory)
        ui.space()
        ui.label(services.config.base_url)
    with ui.column().classes("w-full max-w-6xl mx-auto p-4 gap-4") as content:
        if services.startup_error:
            with testid(ui.card(), "startup-error").classes("w-full bg-red-900 text-white"):
                ui.label("mlxui could not start").classes("font-semibold")
                ui.label(services.startup_error)
        yield content


def _theme_switch(services: Services) -> None:
    async def toggle() -> None:
        await services.appearance.save(dark=not services.appearance.dark)

    button = testid(
        ui.button(on_click=toggle).props(
            'flat round color=white aria-label="Switch between dark and light mode"'
        ),
        "theme-toggle",
    )
    button.bind_icon_from(services.appearance, "dark", lambda dark: "light_mode" if dark else "dark_mode")
    button.tooltip("Switch between dark and light mode")
