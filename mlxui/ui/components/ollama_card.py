"""The Ollama API: its port (0: off) and where it listens now, or why it does not (port taken).

The port is the supervisor's setting `ollama_port` (`ServerSettings.save` checks it); saving
re-binds the listener at once. `MLXUI_OLLAMA_PORT` overrides the setting: the field is then
read-only and the note says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.settings import SettingError
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services

HELP = (
    "Apps that speak the Ollama API (Open WebUI, Enchanted, Raycast, editors' plugins...) find "
    "mlxui's models here: /api/tags, /api/chat, /api/generate, /api/pull, and the OpenAI /v1 routes "
    "too. Ollama's own port is 11434; when Ollama itself runs there, choose another port or 0 (off)."
)


class OllamaCard(ui.card):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        settings = services.supervisor.settings
        from_env = services.config.ollama_port is not None
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Ollama API").classes("text-lg font-semibold")
            self.port = testid(
                ui.number("Port (0: off)", value=services.ollama_port()[0], format="%d", min=0, max=65535)
                .props("outlined dense" + (" readonly" if from_env else ""))
                .classes("w-full"),
                "ollama-port",
            )
            self.port.on("blur", self._save)
            self.port.on("keydown.enter", self._save)
            if from_env:
                ui.label("MLXUI_OLLAMA_PORT sets it; this setting applies when that is unset.").classes(
                    "text-sm"
                )
            note = testid(ui.label().classes("text-sm"), "ollama-note")
            if services.ollama is not None:
                note.bind_text_from(services.ollama, "note")
            ui.label(HELP).classes("text-xs text-slate-500")
        self.settings = settings

    async def _save(self) -> None:
        value = self.port.value
        if self.services.config.ollama_port is not None or value == self.settings.ollama_port:
            return
        try:
            await self.settings.save(ollama_port=value)
        except SettingError as exc:
            self.port.error = exc.message
            return
        self.port.error = None
        if self.services.ollama is not None:
            await self.services.ollama.apply()
