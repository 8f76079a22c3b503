"""A server's log, following new lines while the dialog is open (and only then)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nicegui import background_tasks, ui

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
                ui.button(icon="close", on_click=self.close).props("flat round dense")
            self.log = testid(ui.log(max_lines=MAX_LINES).classes("w-full h-[60vh] text-xs"), "server-log")
        self.on_value_change(self._opened_or_closed)

    async def _opened_or_closed(self, event) -> None:
        if event.value and not self._following:
            self._following = True
            background_tasks.create(self._follow(), name=f"follow {self.log_path.name}")
        elif not event.value:
            self._following = False

    async def _follow(self) -> None:
        position = 0
        try:
            size = self.log_path.stat().st_size
            position = max(0, size - 64_000)  # start with the recent part of a big log
        except FileNotFoundError:
            self.log.push("(no log yet)")
        while self._following and not self.is_deleted:
            position = await asyncio.to_thread(self._read_from, position)
            await asyncio.sleep(FOLLOW_INTERVAL_S)

    def _read_from(self, position: int) -> int:
        try:
            with self.log_path.open("rb") as f:
                if f.seek(0, 2) < position:  # rotated: start again
                    position = 0
                f.seek(position)
                data = f.read(256_000)
        except FileNotFoundError:
            return position
        if data:
            for line in data.decode(errors="replace").splitlines():
                self.log.push(line)
        return position + len(data)
