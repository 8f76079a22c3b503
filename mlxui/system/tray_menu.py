"""The tray's menu as plain data: the app's `/api/status` in, labelled entries with enabled flags
and actions out. No GUI toolkit, no I/O, so every state is tested without a display; `tray.py`
turns the entries into pystray items and carries the actions out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ActionKind(StrEnum):
    OPEN = "open"  # open the web UI in the browser
    START_APP = "start_app"  # spawn `mlxui run` when nothing answers
    START_SERVER = "start_server"
    STOP_SERVER = "stop_server"
    STOP_ALL = "stop_all"
    QUIT = "quit"  # quit the tray only; the app and its servers keep running


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    server: str | None = None


@dataclass(frozen=True)
class MenuEntry:
    label: str
    action: Action | None = None
    enabled: bool = True
    default: bool = False  # what a left click on the icon does where the backend has no menu
    children: tuple[MenuEntry, ...] = ()
    separator: bool = False


SEPARATOR = MenuEntry("", enabled=False, separator=True)
# Server states (mlxui.servers.state.ServerState values) and what the user may do in each.
STARTABLE = frozenset({"stopped", "failed", "crashed"})
STOPPABLE = frozenset({"starting", "loading", "ready"})
STATE_TEXT = {
    "ready": "ready",
    "loading": "loading…",
    "starting": "starting…",
    "stopping": "stopping…",
    "stopped": "stopped",
    "failed": "failed",
    "crashed": "crashed",
}
MAX_NOTE = 70


def build_menu(
    status: Mapping[str, Any] | None, *, notice: str | None = None, app_starting: bool = False
) -> tuple[MenuEntry, ...]:
    """The whole menu. `status` is /api/status's JSON, or None when the app does not answer;
    `notice` is the last problem to show (a failed action); `app_starting` means the tray has
    spawned the app and waits for it."""
    entries: list[MenuEntry] = []
    if notice:
        entries += [MenuEntry(f"⚠ {_shorten(notice)}", enabled=False), SEPARATOR]
    if status is None:
        if app_starting:
            entries.append(MenuEntry("Starting mlxui…", enabled=False))
        else:
            entries += [
                MenuEntry("mlxui is not running", enabled=False),
                MenuEntry("Start mlxui", Action(ActionKind.START_APP), default=True),
            ]
        return (*entries, SEPARATOR, MenuEntry("Quit tray", Action(ActionKind.QUIT)))

    entries.append(MenuEntry("Open mlxui", Action(ActionKind.OPEN), default=True))
    if not status.get("ready", True):
        entries.append(MenuEntry("mlxui is starting…", enabled=False))
    entries.append(SEPARATOR)
    servers = [s for s in status.get("servers") or [] if isinstance(s, Mapping)]
    entries += [server_entry(server) for server in servers] or [MenuEntry("No servers yet", enabled=False)]
    any_running = any(str(s.get("state")) in STOPPABLE for s in servers)
    entries += [
        SEPARATOR,
        MenuEntry("Stop all servers", Action(ActionKind.STOP_ALL), enabled=any_running),
        MenuEntry("Quit tray", Action(ActionKind.QUIT)),
    ]
    return tuple(entries)


def server_entry(server: Mapping[str, Any]) -> MenuEntry:
    """`name — state` with a submenu: the model, the last error if any, Start and Stop."""
    name = server.get("name")
    state = str(server.get("state") or "unknown")
    label = f"{name or '?'} — {STATE_TEXT.get(state, state)}"
    children: list[MenuEntry] = []
    if server.get("model"):
        children.append(MenuEntry(_shorten(str(server["model"])), enabled=False))
    error = server.get("error") or server.get("last_error")
    if error and state in ("failed", "crashed"):
        children.append(MenuEntry(f"⚠ {_shorten(str(error))}", enabled=False))
    can_act = isinstance(name, str) and bool(name)
    children += [
        MenuEntry("Start", Action(ActionKind.START_SERVER, name), enabled=can_act and state in STARTABLE),
        MenuEntry("Stop", Action(ActionKind.STOP_SERVER, name), enabled=can_act and state in STOPPABLE),
    ]
    return MenuEntry(label, children=tuple(children))


def tray_title(status: Mapping[str, Any] | None) -> str:
    """The icon's tooltip: one line saying how things stand. Plain ASCII: on plain X it becomes
    the window name, which is Latin-1."""
    if status is None:
        return "mlxui is not running"
    servers = [s for s in status.get("servers") or [] if isinstance(s, Mapping)]
    if not servers:
        return "mlxui: no servers"
    ready = sum(1 for s in servers if s.get("state") == "ready")
    return f"mlxui: {ready} of {len(servers)} servers ready"


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 1] + "…"
