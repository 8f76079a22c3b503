"""How servers behave: on quit, how many may run, default idle time, gateway API key."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from nicegui import ui

from mlxui import db
from mlxui.servers.supervisor import MAX_RUNNING_SETTING, ON_QUIT_SETTING
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services

DEFAULT_TTL_SETTING = "servers.default_idle_ttl"


class ServerSettingsCard(ui.card):
    def __init__(self, services: Services, *, on_quit: str, max_running: int | None, ttl: int | None) -> None:
        super().__init__()
        self.services = services
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Servers and gateway").classes("text-lg font-semibold")
            self.quit = testid(ui.select({"stop": "Stop them", "keep": "Keep them running (re-adopted next start)"},
                                         value=on_quit, label="When mlxui quits, running servers…",
                                         on_change=self._save_quit).props("outlined dense").classes("w-full"),
                               "on-quit")  # fmt: skip
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.max_running = testid(ui.number("Most servers running at once (blank: no limit)",
                                                   value=max_running, format="%d", min=1,
                                                   on_change=self._save_max).props("outlined dense").classes("grow"),
                                          "max-running")  # fmt: skip
                self.ttl = testid(ui.number("Default idle stop for new profiles (s, blank: never)", value=ttl,
                                            format="%d", min=0, on_change=self._save_ttl)
                                  .props("outlined dense").classes("grow"), "default-ttl")  # fmt: skip
            ui.label(
                f"Gateway: {services.config.base_url}/v1 (any OpenAI client; model = profile name)"
            ).classes("text-sm")
            with ui.row().classes("w-full gap-2 no-wrap items-center"):
                self.key = testid(ui.input("Gateway API key (blank: none)", value=services.gateway_key or "",
                                           password=True, password_toggle_button=True)
                                  .props("outlined dense autocomplete=off").classes("grow"), "gateway-key")  # fmt: skip
                ui.button("Generate", on_click=self._generate).props("flat no-caps")
                testid(ui.button("Save key", on_click=self._save_key).props("no-caps"), "gateway-key-save")

    async def _save_quit(self) -> None:
        await db.set_setting(ON_QUIT_SETTING, self.quit.value)

    async def _save_max(self) -> None:
        value = int(self.max_running.value) if self.max_running.value else None
        self.services.supervisor.max_running = value
        await db.set_setting(MAX_RUNNING_SETTING, value)

    async def _save_ttl(self) -> None:
        await db.set_setting(DEFAULT_TTL_SETTING, int(self.ttl.value) if self.ttl.value else None)

    def _generate(self) -> None:
        self.key.value = "mlxui-" + secrets.token_urlsafe(24)

    async def _save_key(self) -> None:
        from mlxui.services import GATEWAY_KEY_SETTING

        key = (self.key.value or "").strip() or None
        await db.set_setting(GATEWAY_KEY_SETTING, key)
        self.services.gateway_key = key
        ui.notify("Gateway key saved: clients must send it as a Bearer token." if key else "Gateway key removed.",
                  type="positive")  # fmt: skip
