"""The one Downloads tile at the top of the Models page: every active, queued, paused or failed
download with its progress. Rows are rebuilt only when the set of downloads changes; progress
flows through bindings, so nothing here runs on a timer."""

from __future__ import annotations

from nicegui import ui

from mlxui.format import human_bytes, human_duration
from mlxui.hub.bandwidth import format_rate
from mlxui.hub.downloads import DownloadManager
from mlxui.state import DownloadState
from mlxui.ui.testid import testid

SHOWN = ("queued", "downloading", "paused", "failed")


class DownloadsTile(ui.card):
    def __init__(self, manager: DownloadManager) -> None:
        super().__init__()
        self.manager = manager
        self.classes("w-full gap-2").props("bordered")
        testid(self, "downloads-tile")
        self._shown: list[str] = []
        self._unsubscribe = (manager.on_change(self.refresh), manager.on_done(self._on_done))
        self.refresh()

    def refresh(self) -> None:
        """Rebuild rows if the set of shown downloads changed (progress itself is bound)."""
        shown = [repo for repo, st in self.manager.downloads.items() if st.state in SHOWN]
        if shown == self._shown and self.default_slot.children:
            return
        self._shown = shown
        self.clear()
        self.set_visibility(bool(shown))
        with self:
            with ui.row().classes("w-full items-center"):
                ui.icon("download", size="sm").classes("text-primary")
                ui.label("Downloads").classes("text-base font-semibold")
                ui.label(f"{len(shown)}").classes("text-xs px-2 rounded-full bg-indigo-500 text-white")
            for repo in shown:
                DownloadRow(self.manager.downloads[repo], self)

    def _on_done(self, _state: DownloadState) -> None:
        self.refresh()

    def _handle_delete(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        super()._handle_delete()


class DownloadRow(ui.column):
    def __init__(self, state: DownloadState, tile: DownloadsTile) -> None:
        super().__init__()
        self.state, self.tile, manager = state, tile, tile.manager
        self.classes("w-full gap-1 py-1")
        testid(self, f"download-row-{state.repo_id}")
        with self:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.label(state.repo_id).classes("font-medium truncate")
                chip = ui.label().classes("text-xs px-2 rounded bg-slate-500/30")
                chip.bind_text_from(state, "state")
                ui.space()
                self._button("pause", "Pause", manager.pause, ("queued", "downloading"))
                self._button("play_arrow", "Resume", manager.resume, ("paused",))
                self._button("refresh", "Retry", manager.retry, ("failed",))
                self._button("close", "Cancel", self._cancel, SHOWN)
            bar = ui.linear_progress(show_value=False).props("rounded size=8px").classes("w-full")
            bar.bind_value_from(state, "bytes_done", lambda _: state.fraction)
            testid(bar, f"download-progress-{state.repo_id}")
            detail = ui.label().classes("text-xs text-slate-500")
            detail.bind_text_from(state, "bytes_done", lambda _: describe(state))
            detail.bind_text_from(state, "speed_bps", lambda _: describe(state))
            detail.bind_text_from(state, "state", lambda _: describe(state))
            error = ui.label().classes("text-xs text-red-400")
            error.bind_text_from(state, "error", lambda e: e or "")
            error.bind_visibility_from(state, "error", bool)

    def _button(self, icon: str, tip: str, action, visible_in: tuple[str, ...]) -> None:
        async def run() -> None:
            await action(self.state.repo_id)
            self.tile.refresh()

        button = ui.button(icon=icon, on_click=run).props(f'flat round dense size=sm aria-label="{tip}"')
        button.tooltip(tip)
        button.bind_visibility_from(self.state, "state", lambda s: s in visible_in)
        testid(button, f"download-{tip.lower()}-{self.state.repo_id}")

    async def _cancel(self, repo_id: str) -> None:
        await self.tile.manager.cancel(repo_id)
        ui.notify(f"Cancelled {repo_id}; partial files deleted.")


def describe(state: DownloadState) -> str:
    """'1.2 GB of 4.5 GB · 35.2 MB/s · 1 min 34 s left · 8 connections · model.safetensors'"""
    parts = [
        f"{human_bytes(state.bytes_done)} of {human_bytes(state.bytes_total) if state.bytes_total else '?'}"
    ]
    if state.state == "downloading":
        parts.append(f"{human_bytes(state.speed_bps)}/s")
        if state.eta_s is not None:
            parts.append(f"{human_duration(state.eta_s)} left")
        if state.connections:
            parts.append(f"{state.connections} connection{'s' if state.connections != 1 else ''}")
        if state.limit_bps:
            parts.append(f"limit {format_rate(state.limit_bps)}")
        if state.current_file:
            parts.append(state.current_file)
    if state.note:
        parts.append(state.note)
    return " · ".join(parts)
