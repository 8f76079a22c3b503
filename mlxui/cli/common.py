"""Helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from typing import Any

from mlxui.app_client import AppApiError, AppClient
from mlxui.config import Config, load_config
from mlxui.format import human_bytes

__all__ = [
    "CliError",
    "add_target_options",
    "api_exit_code",
    "app_client",
    "config_from_args",
    "human_bytes",
    "print_json",
]


class CliError(Exception):
    """A user-facing failure: printed as one line, no traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def config_from_args(args: Any) -> Config:
    config = load_config()
    return config.with_overrides(host=getattr(args, "host", None), port=getattr(args, "port", None))


def add_target_options(parser: Any) -> None:
    """--host/--port for commands that talk to a running app."""
    parser.add_argument("--host", help="address of the running app (default: MLXUI_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port of the running app (default: MLXUI_PORT or 8765)")


def app_client(config: Config) -> AppClient:
    """The running app's HTTP API; its refusals reach `main` as AppApiError (see api_exit_code)."""
    return AppClient(config.base_url)


def api_exit_code(exc: AppApiError) -> int:
    """2 for values the app refuses (bad request, too large, field errors); 1 for the rest: not
    running, not found, a server that failed."""
    return 2 if exc.status in (400, 413, 422) else 1


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
