"""`mlxui settings [list|set NAME [VALUE]|unset NAME]`: the settings of the Settings page, through
the running app's JSON API (`/api/settings`), so the app checks and applies them at once.

Names are written with dashes (`max-running`, `default-idle-ttl`, `gateway-key`, `memory-budget`,
`ollama-port`, `bandwidth-limit`, `max-connections`).
The gateway key is never printed back, except a key that `set gateway-key` (with no value) has just
generated. Memory sizes print in binary units (`24 GB` = 24 x 1024**3 bytes), as `set` reads them.
"""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from mlxui.cli.common import CliError, add_target_options, app_client, config_from_args, print_json
from mlxui.hub.bandwidth import format_rate
from mlxui.servers.memory_budget import format_size

HIDDEN = {"gateway_key_set": "gateway-key"}
SIZES = ("memory_budget", "memory_budget_bytes")


def add_commands(commands: Any) -> None:
    settings = commands.add_parser(
        "settings",
        help="show or change settings (servers, memory budget, gateway key, dark mode)",
        description="Show or change mlxui's settings in the running app. Without an action: list them.",
    )
    add_target_options(settings)
    settings.add_argument("--json", action="store_true", help="print JSON for scripts")
    settings.set_defaults(handler=list_command)
    actions = settings.add_subparsers(dest="settings_action", metavar="ACTION")
    list_ = actions.add_parser("list", help="every setting and its value")
    set_ = actions.add_parser(
        "set",
        help="change a setting, e.g. `set max-running 2`, `set memory-budget 24GB` or `set gateway-key`",
    )
    set_.add_argument(
        "name",
        help="on-quit, max-running, default-idle-ttl, memory-budget, gateway-key, ollama-port (0: off), "
        "bandwidth-limit (e.g. 50MB/s, 0: none), max-connections or dark",
    )
    set_.add_argument(
        "value",
        nargs="?",
        help="the new value (memory-budget: bytes or 24GB, 512MB, 1.5TB with 1 GB = 1024³ bytes; "
        "gateway-key without one: generate a key)",
    )
    unset = actions.add_parser(
        "unset", help="clear a setting: no limit, no idle stop, default budget, no key"
    )
    unset.add_argument(
        "name", help="max-running, default-idle-ttl, memory-budget, gateway-key or bandwidth-limit"
    )
    for parser, handler in ((list_, list_command), (set_, set_command), (unset, unset_command)):
        add_target_options(parser)
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        parser.set_defaults(handler=handler)


def list_command(args: argparse.Namespace) -> int:
    settings = app_client(config_from_args(args)).call("GET", "/api/settings")
    _show(settings, args.json)
    return 0


def set_command(args: argparse.Namespace) -> int:
    name = _field(args.name)
    value: Any = args.value
    generated = None
    if value is None:
        if name != "gateway_key":
            raise CliError(f"Give a value: mlxui settings set {args.name} VALUE", 2)
        value = generated = "mlxui-" + secrets.token_urlsafe(24)
    settings = app_client(config_from_args(args)).call("PUT", "/api/settings", json={name: value})
    if generated:
        print(f"Gateway key: {generated}\n(copy it now: mlxui does not show it again)")
    elif not args.json:
        _print_changed(args.name, name, settings)
    if args.json:
        print_json(settings)
    return 0


def unset_command(args: argparse.Namespace) -> int:
    name = _field(args.name)
    settings = app_client(config_from_args(args)).call("PUT", "/api/settings", json={name: None})
    if args.json:
        print_json(settings)
    else:
        _print_changed(args.name, name, settings)
    return 0


def _print_changed(label: str, name: str, settings: dict[str, Any]) -> None:
    print(f"{label} = {_shown(name, settings)}")
    if name == "ollama_port" and settings.get("ollama_note"):
        print(settings["ollama_note"])
    if name == "memory_budget" and settings.get("memory_budget_source") != "setting":
        budget = _shown("memory_budget_bytes", settings)
        source = settings.get("memory_budget_source")
        if source == "environment":
            print(f"(MLXUI_MEMORY_BUDGET overrides it: the budget in force is {budget})")
        else:
            print(f"(the budget in force is {budget}, {source})")


def _field(name: str) -> str:
    """`max-running` -> `max_running`; the app itself says which names exist."""
    return name.strip().replace("-", "_")


def _shown(name: str, settings: dict[str, Any]) -> str:
    if name == "gateway_key":
        return "set (hidden)" if settings.get("gateway_key_set") else "-"
    value = settings.get(name)
    if name in SIZES and isinstance(value, int):
        return format_size(value)
    if name == "bandwidth_limit" and isinstance(value, int):
        return format_rate(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return "-" if value is None else str(value)


def _show(settings: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(settings)
        return
    rows = [(HIDDEN.get(key, key).replace("_", "-"), key) for key in settings]
    width = max(len(label) for label, _ in rows)
    for label, key in rows:
        shown = _shown("gateway_key" if key == "gateway_key_set" else key, settings)
        print(f"{label:<{width}}  {shown}")
