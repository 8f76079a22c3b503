"""The downloads' settings: a bandwidth limit for all downloads together and the most connections
one download opens. Saved values apply to downloads already running (the limit at once, the
connections from the next download that starts). docs/architecture.md §11.
"""

from __future__ import annotations

from typing import Any

from nicegui import binding

from mlxui.hub.bandwidth import RateLimiter, parse_rate
from mlxui.settings import SettingError, SettingsGroup, whole_number

MAX_CONNECTIONS = 32
DEFAULT_CONNECTIONS = 16


@binding.bindable_dataclass
class DownloadSettings(SettingsGroup):
    PREFIX = "downloads"

    bandwidth_limit: int = 0  # bytes per second for all downloads together; 0: no limit
    max_connections: int = DEFAULT_CONNECTIONS  # per download (ranges of large files, files at once)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.bandwidth_limit)

    def check(self, field: str, value: Any) -> Any:
        if field == "bandwidth_limit":
            return _rate(value)
        if field == "max_connections":
            n = whole_number(field, value, 1, MAX_CONNECTIONS)
            return DEFAULT_CONNECTIONS if n is None else n
        raise SettingError(field, f"{field!r} is not a setting.")

    async def load(self) -> None:
        await super().load()
        self.limiter.set_rate(self.bandwidth_limit)

    async def save(self, **changes: Any) -> None:
        await super().save(**changes)
        self.limiter.set_rate(self.bandwidth_limit)


def _rate(value: Any) -> int:
    """Bytes per second, or a rate text ('50MB/s'); blank, None or 0: no limit."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool):
        raise SettingError("bandwidth_limit", "Give a rate like 50MB/s, or 0 for no limit.")
    if isinstance(value, int):
        rate = value
    else:
        try:
            rate = parse_rate(str(value))
        except ValueError as exc:
            raise SettingError("bandwidth_limit", str(exc)) from exc
    if rate < 0:
        raise SettingError("bandwidth_limit", "A limit cannot be negative; 0 means no limit.")
    if 0 < rate < 64_000:
        raise SettingError("bandwidth_limit", "Give at least 64KB/s, or 0 for no limit.")
    return rate
