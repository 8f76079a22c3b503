"""`mlxui autostart enable|disable|status|restart` and `mlxui tray`.

Exit codes: 0 done; 1 the service manager refused or failed; 2 auto-start cannot work here
(no launchd/systemd) or the tray's packages / display are missing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlxui.cli.common import CliError, add_target_options, config_from_args, print_json
from mlxui.config import check_port
from mlxui.system.autostart import AutostartError, AutostartStatus, autostart_manager


def add_commands(commands: Any) -> None:
    autostart = commands.add_parser(
        "autostart",
        help="start mlxui at login (launchd on macOS, systemd on Linux)",
        description="Start mlxui at login. Which model servers then start is set per profile "
        '("start with mlxui").',
    )
    actions = autostart.add_subparsers(dest="autostart_action", metavar="ACTION", required=True)
    enable = actions.add_parser("enable", help="start mlxui at every login, and now")
    enable.add_argument(
        "--host", help="address the auto-started mlxui binds (default: MLXUI_HOST or 127.0.0.1)"
    )
    enable.add_argument(
        "--port", type=int, help="port the auto-started mlxui binds (default: MLXUI_PORT or 8765)"
    )
    actions.add_parser("disable", help="stop starting mlxui at login (stops the auto-started mlxui)")
    actions.add_parser("status", help="show whether mlxui starts at login and runs now")
    actions.add_parser("restart", help="restart the auto-started mlxui")
    for action in actions.choices.values():
        action.add_argument("--json", action="store_true", help="print JSON for scripts")
        action.set_defaults(handler=autostart_command)

    tray = commands.add_parser(
        "tray", help="show mlxui in the menu bar / system tray", description="A menu-bar icon for mlxui."
    )
    add_target_options(tray)
    tray.add_argument(
        "--interval", type=float, default=3.0, help="seconds between status refreshes (default 3)"
    )
    tray.set_defaults(handler=tray_command)


def autostart_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_port(config.port)
    try:
        manager = autostart_manager(config)
        status = getattr(manager, args.autostart_action)()
    except AutostartError as exc:
        raise CliError(str(exc), exc.exit_code) from exc
    except OSError as exc:
        raise CliError(f"cannot write the auto-start file: {exc}", 1) from exc
    if args.json:
        print_json(status.to_dict())
    else:
        print(describe(status))
    return 0


def describe(status: AutostartStatus) -> str:
    what = {"launchd": "LaunchAgent io.mlxui.app", "systemd": "systemd user unit mlxui.service"}
    state = "on" if status.enabled else "off"
    now = "running now" if status.running else "not running now"
    lines = [f"Auto-start at login: {state} ({what.get(status.manager, status.manager)}, {now})"]
    if status.installed:
        lines.append(f"  file: {status.path}")
    if status.detail:
        lines.append(f"  note: {status.detail}")
    return "\n".join(lines)


def tray_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.interval < 0.5:
        raise CliError("--interval must be at least 0.5 seconds")
    from mlxui.system.tray import TrayUnavailable, run_tray  # imports pystray lazily

    try:
        run_tray(config, interval=args.interval)
    except TrayUnavailable as exc:
        raise CliError(str(exc), 2) from exc
    print("mlxui tray: quit", file=sys.stderr)
    return 0
