"""`mlxui` command line. Every user error prints one clear line and a non-zero exit code.

Exit codes: 0 ok, 1 the app is not running / the thing asked for is not there, 2 bad usage or a
setting that cannot work (port in use, bad value), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from mlxui import __version__
from mlxui.app_client import AppApiError
from mlxui.cli import (
    app_commands,
    chats_commands,
    models_commands,
    peers_commands,
    servers_commands,
    settings_commands,
    system_commands,
)
from mlxui.cli.common import CliError, api_exit_code
from mlxui.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlxui",
        description="Find, download, serve and chat with local MLX models. Without a command: `mlxui run`.",
    )
    parser.add_argument("--version", action="version", version=f"mlxui {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    app_commands.add_commands(commands)
    models_commands.add_commands(commands)
    servers_commands.add_commands(commands)
    system_commands.add_commands(commands)
    settings_commands.add_commands(commands)
    peers_commands.add_commands(commands)
    chats_commands.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Output into a pipe that closes early (`mlxui models list
    --json | head -1`) ends the command quietly, whatever it was printing."""
    restore_ctrl_c()
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a message at interpreter exit
    except BrokenPipeError:
        # As Python's docs advise (signal module, "Note on SIGPIPE"): send what is still buffered
        # to devnull, so the flush at exit cannot fail again, and exit with 1.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args_list or args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version"):
        args_list = ["run", *args_list]  # `mlxui --port 9000` means `mlxui run --port 9000`
    args = parser.parse_args(args_list)
    try:
        return int(args.handler(args) or 0)
    except (CliError, ConfigError) as exc:
        print(str(exc), file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except AppApiError as exc:
        print(str(exc), file=sys.stderr)
        return api_exit_code(exc)
    except KeyboardInterrupt:
        print("mlxui: interrupted", file=sys.stderr)
        return 130


def restore_ctrl_c() -> None:
    """Make Ctrl-C raise KeyboardInterrupt however mlxui was started. A shell starts the commands
    of a background job (`mlxui ... &` in a script) with SIGINT ignored, and Python keeps an
    ignored SIGINT ignored: every command would then shrug off Ctrl-C and `kill -INT`."""
    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    raise SystemExit(main())
