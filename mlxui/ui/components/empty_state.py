"""A friendly placeholder for a list with nothing in it yet."""

from __future__ import annotations

from nicegui import ui


class EmptyState(ui.card):
    def __init__(self, icon: str, title: str, text: str) -> None:
        super().__init__()
        self.classes("w-full items-center text-center py-10 gap-2").props("flat bordered")
        with self:
            ui.icon(icon, size="48px").classes("text-slate-400")
            ui.label(title).classes("text-lg font-medium")
            ui.label(text).classes("text-sm text-slate-500 max-w-xl")
