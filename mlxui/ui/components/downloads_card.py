"""Settings: the downloads' bandwidth limit (all downloads together) and connections per download.

Both are `DownloadSettings` (hub/download_settings.py), saved on blur or Enter; the limit applies
to running downloads at once.
"""

from __future__ import annotations

from nicegui import ui

from mlxui.hub.bandwidth import format_rate
from mlxui.hub.download_settings import MAX_CONNECTIONS, DownloadSettings
from mlxui.settings import SettingError
from mlxui.ui.testid import testid

HELP = (
    "Large files come over several connections at once, and several files at a time: content "
    "networks cap each connection, so more connections fill a fast line. Lower the limit to leave "
    "room for other traffic; it applies to downloads already running."
)


class DownloadsCard(ui.card):
    def __init__(self, settings: DownloadSettings) -> None:
        super().__init__()
        self.settings = settings
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Downloads").classes("text-lg font-semibold")
            with ui.row().classes("w-full gap-4 no-wrap items-start"):
                self.limit = testid(
                    ui.input(
                        "Bandwidth limit", value=_shown(settings.bandwidth_limit), placeholder="no limit"
                    )
                    .props('outlined dense hint="e.g. 50MB/s or 800KB/s; empty: no limit"')
                    .classes("grow"),
                    "bandwidth-limit",
                )
                self.connections = testid(
                    ui.number("Connections per download", value=settings.max_connections, format="%d",
                              min=1, max=MAX_CONNECTIONS)
                    .props(f'outlined dense hint="1-{MAX_CONNECTIONS}"')
                    .classes("w-56"),
                    "max-connections",
                )  # fmt: skip
            for field in (self.limit, self.connections):
                field.on("blur", self._save)
                field.on("keydown.enter", self._save)
            ui.label(HELP).classes("text-xs text-slate-500")

    async def _save(self) -> None:
        changes = {}
        limit_text = (self.limit.value or "").strip()
        if limit_text != _shown(self.settings.bandwidth_limit):
            changes["bandwidth_limit"] = limit_text
        if self.connections.value != self.settings.max_connections:
            changes["max_connections"] = self.connections.value
        if not changes:
            return
        try:
            await self.settings.save(**changes)
        except SettingError as exc:
            target = self.limit if exc.field == "bandwidth_limit" else self.connections
            target.error = exc.message
            return
        self.limit.error = self.connections.error = None
        self.limit.value = _shown(self.settings.bandwidth_limit)
        ui.notify(f"Downloads: {format_rate(self.settings.bandwidth_limit)}, "
                  f"{self.settings.max_connections} connections per download.")  # fmt: skip


def _shown(rate: int) -> str:
    return "" if rate <= 0 else format_rate(rate).replace(" ", "")
