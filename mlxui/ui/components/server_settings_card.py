"""How servers behave: on quit, how many may run, default idle time, memory budget, gateway API key.

Every change goes through `ServerSettings.save` (the supervisor's settings), which checks it: a
refused value shows its sentence under the field and nothing is saved.
"""

from __future__ import annotations

import secrets
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from mlxui.config import Config
from mlxui.servers.memory_budget import effective_budget, format_size
from mlxui.servers.settings import ServerSettings
from mlxui.settings import SettingError
from mlxui.ui.testid import testid

KEY_PROTECTS = (
    "The key guards the gateway (/v1) and /metrics. When mlxui is shared on the network (--host), it "
    "also guards every page and /api for other machines, which sign in with it. The model servers "
    "themselves listen on this machine only and have no key."
)


BUDGET_HELP = (
    "How much memory the model servers may plan to use together; mlxui stops idle servers to stay "
    "within it. 1 GB = 1024³ bytes, as macOS counts memory. Default: 75 % of memory on a Mac (what "
    "Metal lets the GPU keep), memory less the system's share (2 GB or 10 %) elsewhere."
)


def _size_text(value: int | None) -> str:
    return "" if value is None else format_size(value)


class ServerSettingsCard(ui.card):
    def __init__(self, settings: ServerSettings, gateway_url: str, config: Config) -> None:
        super().__init__()
        self.settings = settings
        self.config = config
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
            self.budget = testid(ui.input("Memory budget for models (e.g. 24GB; blank: the default)",
                                          value=_size_text(settings.memory_budget))
                                 .props("outlined dense clearable").classes("w-full"), "memory-budget")  # fmt: skip
            self.budget.on("blur", lambda: self._save_budget(self.budget.value))
            self.budget.on("keydown.enter", lambda: self._save_budget(self.budget.value))
            self.budget.on("clear", lambda: self._save_budget(""))  # the value may not have arrived yet
            self.budget_status = testid(ui.label().classes("text-sm"), "memory-budget-effective")
            self.budget_status.bind_text_from(
                settings, "memory_budget", backward=lambda _: self._budget_text()
            )
            ui.label(BUDGET_HELP).classes("text-xs text-slate-500")
            ui.label(f"Gateway: {gateway_url} (any OpenAI client; model = profile name)").classes("text-sm")
            ui.label(KEY_PROTECTS).classes("text-xs text-slate-500")
            with ui.row().classes("w-full gap-2 no-wrap items-center"):
                self.key = testid(ui.input("New gateway API key", password=True, password_toggle_button=True)
                                  .props("outlined dense autocomplete=new-password").classes("grow"),
                                  "gateway-key")  # fmt: skip
                ui.button("Generate", on_click=self._generate).props("flat no-caps")
                testid(ui.button("Save key", on_click=self._save_key).props("no-caps"), "gateway-key-save")
                self.remove = testid(ui.button("Remove key", on_click=self._remove_key)
                                     .props("flat no-caps color=negative"), "gateway-key-remove")  # fmt: skip
            self.key_status = testid(ui.label().classes("text-sm"), "gateway-key-status")
            self._show_key_status()

    async def _save(self, field: str, value: Any, element: ValidationElement) -> bool:
        try:
            await self.settings.save(**{field: value})
        except SettingError as exc:
            element.error = exc.message
            return False
        element.error = None
        return True

    async def _save_budget(self, typed: str | None) -> None:
        text = (typed or "").strip()
        if text == _size_text(self.settings.memory_budget):
            self.budget.error = None
            return
        if await self._save("memory_budget", text or None, self.budget):
            self.budget.value = _size_text(self.settings.memory_budget)

    def _budget_text(self) -> str:
        """The budget in force and who set it (bound: a change by the CLI or API shows at once)."""
        budget, source = effective_budget(self.settings, self.config)
        if source == "environment":
            source = "from MLXUI_MEMORY_BUDGET, which overrides this setting"
        return f"In force: {format_size(budget)} ({source})"

    def _generate(self) -> None:
        self.key.value = "mlxui-" + secrets.token_urlsafe(24)
        self.key.props("type=text")  # shown until saved, so it can be copied into a client
        ui.notify("Copy the key now: once saved, mlxui never shows it again.", type="info")

    async def _save_key(self) -> None:
        if not (self.key.value or "").strip():
            self.key.error = "Type or generate a key first; Remove key turns the key off."
            return
        if not await self._save("gateway_key", self.key.value, self.key):
            ui.notify("The key was not saved: see the message under it.", type="warning")
            return
        self.key.value = ""
        self.key.props("type=password")
        self._show_key_status()
        ui.notify("Gateway key saved: clients must send it as a Bearer token.", type="positive")

    async def _remove_key(self) -> None:
        await self._save("gateway_key", None, self.key)
        self._show_key_status()
        ui.notify("Gateway key removed: /v1 and /metrics answer without a key.", type="positive")

    def _show_key_status(self) -> None:
        """The saved key itself never travels to the browser: only whether one is set."""
        has_key = bool(self.settings.gateway_key)
        self.key_status.text = (
            "A key is set (hidden). Type or generate a new one to replace it."
            if has_key
            else "No key: any program on this machine can use the gateway."
        )
        self.remove.set_visibility(has_key)
