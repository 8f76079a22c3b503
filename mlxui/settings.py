"""Typed settings that services own, persisted one key per field in the settings table.

A service keeps its settings as a `SettingsGroup` (a bindable dataclass: the UI binds to its
fields) and every face changes them through `save`, which checks each value first. The groups:
`ServerSettings` (the supervisor's: servers and gateway) and `Appearance` (dark mode).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

from mlxui.db.settings import get_setting, set_setting

log = logging.getLogger(__name__)


class SettingError(ValueError):
    """A setting that cannot be saved: `field` names it, the message says why in one sentence."""

    def __init__(self, field: str, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.errors = errors or {field: message}  # every refused setting, when several were checked


class SettingsGroup:
    """Typed settings a service owns, each field persisted under `PREFIX.field` (or `KEYS[field]`).

    Subclasses are `binding.bindable_dataclass`es (the UI binds to their fields) and override
    `check(field, value)` to validate and normalise one value. `save(**changes)` checks every change
    first and writes nothing when one is bad, so a refused setting never half-applies.
    """

    PREFIX: ClassVar[str] = ""
    KEYS: ClassVar[dict[str, str]] = {}

    def check(self, field: str, value: Any) -> Any:
        """The value to store for `field`; raises SettingError with a sentence for the user."""
        raise NotImplementedError

    def names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def key(self, field: str) -> str:
        return self.KEYS.get(field, f"{self.PREFIX}.{field}")

    async def load(self) -> None:
        """Read every field; a value that no longer passes `check` keeps the default (and is logged)."""
        for name in self.names():
            stored = await get_setting(self.key(name), None)
            if stored is None:
                continue
            try:
                setattr(self, name, self.check(name, stored))
            except SettingError as exc:
                log.warning("ignoring the stored setting %s=%r: %s", self.key(name), stored, exc)

    async def save(self, **changes: Any) -> None:
        """Check, store and apply `changes`; raises SettingError (nothing saved) for a bad one."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise SettingError(unknown[0], f"{unknown[0]!r} is not a setting.")
        clean = {name: self.check(name, value) for name, value in changes.items()}
        for name, value in clean.items():
            await set_setting(self.key(name), value)
        for name, value in clean.items():
            setattr(self, name, value)


def whole_number(field: str, value: Any, low: int, high: int, *, blank_ok: bool = True) -> int | None:
    """`value` as an int in [low, high]; None for blank when `blank_ok`; SettingError otherwise."""
    if value is None or value == "":
        if blank_ok:
            return None
        raise SettingError(field, "Give a whole number.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # number inputs deliver floats
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())  # the CLI passes text
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(field, "Give a whole number" + (" or leave it empty." if blank_ok else "."))
    if not low <= value <= high:
        raise SettingError(field, f"Must be between {low} and {high}.")
    return value
