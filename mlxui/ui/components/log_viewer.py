"""A server's log, following new lines while the dialog is open (and only then)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nicegui import background_tasks, ui

from mlxui.servers.logs import follow_file
from mlxui.ui.testid import testid

FOLLOW_INTERVAL_S = 0.5
MAX_LINES = 500


class LogViewer(ui.dialog):
    def __init__(self, name: str, log_path: Path) -> None:
        super().__init__()
        self.log_path = log_path
        self._following = False
        with self, ui.card().classes("w-[900px] max-w-full gap-2"):
            with ui.row().classes("w-full items-center"):
                ui.label(f"Log of {name}").classes("text-lg font-semibold")
                ui.space()
                ui.label(str(log_path)).classes("text-xs text-slate-500")
                ui.button(icon="close", on_click=self.close).props(
                    'flat round dense aria-label="Close the log"'
                )
            self.log = testid(ui.log(max_lines=MAX_LINES).classes("w-full h-[60vh] text-xs"), "server-log")
        self.on_value_change(self._opened_or_closed)

    async def _opened_or_closed(self, event) -> None:
        if event.value and not self._following:
            self._following = True
            background_tasks.create(self._follow(), name=f"follow {self.log_path.name}")
        elif not event.value:
            self._following = False

    async def _follow(self) -> None:
        if not await asyncio.to_thread(self.log_path.exists):
            self.log.push("(no log yet)")
        async for chunk in follow_file(self.log_path, MAX_LINES, gone=self._closed, poll_s=FOLLOW_INTERVAL_S):
            for line in chunk.splitlines():
                self.log.push(line)

    async def _closed(self) -> bool:
        return not self._following or self.is_deleted
