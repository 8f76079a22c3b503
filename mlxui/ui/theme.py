"""Dark or light, shared by every open tab and remembered across restarts."""

from __future__ import annotations

from nicegui import binding

from mlxui import db

DARK_MODE_KEY = "ui.dark_mode"


@binding.bindable_dataclass
class Theme:
    dark: bool = True

    async def load(self) -> None:
        self.dark = bool(await db.get_setting(DARK_MODE_KEY, True))

    async def set_dark(self, dark: bool) -> None:
        self.dark = dark
        await db.set_setting(DARK_MODE_KEY, dark)
