"""How mlxui looks: dark or light, shared by every open tab and remembered across restarts."""

from __future__ import annotations

from typing import Any

from nicegui import binding

from mlxui.settings import SettingError, SettingsGroup


@binding.bindable_dataclass
class Appearance(SettingsGroup):
    PREFIX = "ui"
    KEYS = {"dark": "ui.dark_mode"}

    dark: bool = True

    def check(self, field: str, value: Any) -> Any:
        if field != "dark":
            raise SettingError(field, f"{field!r} is not a setting.")
        if isinstance(value, str) and value.strip().lower() in ("on", "off", "true", "false", "yes", "no"):
            return value.strip().lower() in ("on", "true", "yes")  # the CLI passes text
        if not isinstance(value, bool):
            raise SettingError(field, "Dark mode is on or off.")
        return value
