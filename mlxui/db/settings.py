"""User preferences as JSON values in the `settings` table, one row per key."""

from __future__ import annotations

import json
from typing import Any

from mlxui.db.models import Setting

# Tortoise 1.1's JSONField cannot hold a bare string: it takes a `str` for JSON text that is
# already encoded, so "dark" is refused and "42" comes back as 42. Every value is therefore
# stored inside a one-key object, which the field round-trips faithfully.
_KEY = "v"


async def get_setting(key: str, default: Any = None) -> Any:
    """The stored value for `key`, or `default` when it was never set."""
    row = await Setting.get_or_none(key=key)
    return default if row is None else row.value[_KEY]


async def set_setting(key: str, value: Any) -> None:
    """Store `value` (anything JSON can hold; tuples come back as lists) under `key`.

    Raises TypeError or ValueError, and writes nothing, for values JSON cannot hold (objects,
    NaN).
    """
    json.dumps(value, allow_nan=False)  # refuse before writing; the field's encoder may differ
    await Setting.update_or_create(key=key, defaults={"value": {_KEY: value}})
