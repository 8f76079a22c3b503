"""The settings of the fleet of servers and its gateway, owned by the `Supervisor`.

Every face (Settings page, JSON API, CLI) changes them through `ServerSettings.save`, which
validates, stores and applies them at once: the supervisor reads `max_running` when it next starts a
server, `default_idle_ttl` when a profile is created, `on_quit` when mlxui quits, and the gateway
reads `gateway_key` on each request. `memory_budget` is read through
`memory_budget.effective_budget`, where `MLXUI_MEMORY_BUDGET` overrides it. `ollama_port` is where
the Ollama API listens (0: off; `MLXUI_OLLAMA_PORT` overrides it); the listener re-binds when it
changes (`servers/dialects/ollama_listener.py`).
"""

from __future__ import annotations

from typing import Any

from nicegui import binding

from mlxui.servers.memory_budget import SizeError, check_budget
from mlxui.settings import SettingError, SettingsGroup, whole_number

ON_QUIT_CHOICES = ("stop", "keep")
MAX_IDLE_TTL_S = 7 * 24 * 3600
MAX_SERVERS = 64
MIN_KEY_LENGTH = 8
DEFAULT_OLLAMA_PORT = 11434  # Ollama's own port: what Ollama-speaking apps try first


@binding.bindable_dataclass
class ServerSettings(SettingsGroup):
    PREFIX = "servers"
    KEYS = {"gateway_key": "gateway.api_key"}

    on_quit: str = "stop"  # what happens to running servers when mlxui quits: "stop" | "keep"
    max_running: int | None = None  # least-recently-used idle servers stop beyond this many
    default_idle_ttl: int | None = None  # seconds; new profiles get it unless they say otherwise
    gateway_key: str | None = None  # when set, /v1/* needs "Authorization: Bearer <key>"
    memory_budget: int | None = (
        None  # bytes the servers may plan to use; None: the default (docs/architecture.md §9)
    )
    ollama_port: int = DEFAULT_OLLAMA_PORT  # the Ollama API's listener; 0: off

    def check(self, field: str, value: Any) -> Any:
        if field == "on_quit":
            if value not in ON_QUIT_CHOICES:
                raise SettingError(field, "Choose 'stop' (stop the servers) or 'keep' (keep them running).")
            return value
        if field == "max_running":
            return whole_number(field, value, 1, MAX_SERVERS)
        if field == "default_idle_ttl":
            return whole_number(field, value, 0, MAX_IDLE_TTL_S) or None  # 0 means never, as blank does
        if field == "gateway_key":
            return _gateway_key(value)
        if field == "memory_budget":
            return _memory_budget(value)
        if field == "ollama_port":
            port = whole_number(field, value, 0, 65535)  # blank: the default
            return DEFAULT_OLLAMA_PORT if port is None else port
        raise SettingError(field, f"{field!r} is not a setting.")


def _memory_budget(value: Any) -> int | None:
    """Bytes or a size text ("24GB"); blank or None: the default. `MLXUI_MEMORY_BUDGET` overrides it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # number inputs and JSON may deliver floats
    try:
        return check_budget(value)
    except SizeError as exc:
        raise SettingError("memory_budget", str(exc)) from exc


def _gateway_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingError("gateway_key", "The gateway key is text.")
    key = value.strip()
    if not key:
        return None
    if len(key) < MIN_KEY_LENGTH or len(key) > 256 or any(c.isspace() or not c.isprintable() for c in key):
        raise SettingError(
            "gateway_key", f"Use {MIN_KEY_LENGTH} to 256 printable characters without spaces for the key."
        )
    return key
