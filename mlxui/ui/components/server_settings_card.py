"""How servers behave: on quit, how many may run, default idle time, gateway API key.

Every change goes through `ServerSettings.save` (the supervisor's settings), which checks it: a
refused value shows its sentence under the field and nothing is saved.
"""

from __future__ import annotations

import secrets
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from mlxui.servers.settings import ServerSettings
from mlxui.settings import SettingError
from mlxui.ui.testid import testid


class ServerSettingsCard(ui.card):
    def __init__(self, settings: ServerSettings, gateway_url: str) -> None:
        super().__init__()
        self.settings = settings
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Servers and gateway").classes("text-lg font-semibold")
            self.quit = testid(ui.select({"stop": "Stop them", "keep": "Keep them running (re-adopted next start)"},
                                         value=settings.on_quit, label="When mlxui quits, running servers…",
                                         on_change=lambda e: self._save("on_quit", e.value, self.quit))
                               .props("outlined dense").classes("w-full"), "on-quit")  # fmt: skip
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.max_running = testid(ui.number("Most servers running at once (blank: no limit)",
                                                   value=settings.max_running, format="%d", min=1,
                                                   on_change=lambda e: self._save("max_running", e.value,
                                                                                  self.max_running))
                                          .props("outlined dense").classes("grow"), "max-running")  # fmt: skip
                self.ttl = testid(ui.number("Default idle stop for new profiles (s, blank: never)",
                                            value=settings.default_idle_ttl, format="%d", min=0,
                                            on_change=lambda e: self._save("default_idle_ttl", e.value, self.ttl))
                                  .props("outlined dense").classes("grow"), "default-ttl")  # fmt: skip
            ui.label(f"Gateway: {gateway_url} (any OpenAI client; model = profile name)").classes("text-sm")
            with ui.row().classes("w-full gap-2 no-wrap items-center"):
                self.key = testid(ui.input("Gateway API key (blank: none)", value=settings.gateway_key or "",
                                           password=True, password_toggle_button=True)
                                  .props("outlined dense autocomplete=off").classes("grow"), "gateway-key")  # fmt: skip
                ui.button("Generate", on_click=self._generate).props("flat no-caps")
                testid(ui.button("Save key", on_click=self._save_key).props("no-caps"), "gateway-key-save")

    async def _save(self, field: str, value: Any, element: ValidationElement) -> bool:
        try:
            await self.settings.save(**{field: value})
        except SettingError as exc:
            element.error = exc.message
            return False
        element.error = None
        return True

    def _generate(self) -> None:
        self.key.value = "mlxui-" + secrets.token_urlsafe(24)

    async def _save_key(self) -> None:
        if not await self._save("gateway_key", self.key.value, self.key):
            ui.notify("The key was not saved: see the message under it.", type="warning")
            return
        key = self.settings.gateway_key
        ui.notify("Gateway key saved: clients must send it as a Bearer token." if key else "Gateway key removed.",
                  type="positive")  # fmt: skip
