"""Start mlxui at login: one launchd agent (macOS) or systemd user unit (Linux)."""

from __future__ import annotations

from nicegui import ui

from mlxui.config import Config
from mlxui.system.autostart import AutostartOutcome, autostart_status, disable_autostart, enable_autostart
from mlxui.ui.testid import testid


class AutostartCard(ui.card):
    def __init__(self, config: Config, outcome: AutostartOutcome) -> None:
        super().__init__()
        self.config = config
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Start at login").classes("text-lg font-semibold")
            ui.label(
                "Runs mlxui in the background when you log in; profiles marked “start with mlxui” start too."
            ).classes("text-sm text-slate-500")
            self.switch = testid(ui.switch("Start mlxui at login", value=outcome.enabled), "autostart-switch")
            self.detail = testid(ui.label().classes("text-sm"), "autostart-detail")
        self._show(outcome)
        self.switch.on_value_change(self._toggle)

    async def _toggle(self, event) -> None:
        outcome = await (enable_autostart(self.config) if event.value else disable_autostart(self.config))
        self._show(outcome)
        if outcome.error is None:
            ui.notify("Auto-start on" if outcome.enabled else "Auto-start off", type="positive")

    def _show(self, outcome: AutostartOutcome) -> None:
        if outcome.error:
            self.detail.text = outcome.error
            self.detail.classes(replace="text-sm text-negative")
            self.switch.set_enabled(outcome.status is not None)
            return
        status = outcome.status
        assert status is not None
        self.detail.classes(replace="text-sm text-slate-500")
        self.detail.text = f"{status.manager}: {status.path}" + (
            f" — {status.detail}" if status.detail else ""
        )


async def build_autostart_card(config: Config) -> AutostartCard:
    return AutostartCard(config, await autostart_status(config))
