"""Helpers shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx

from mlxui.config import Config, load_config
from mlxui.format import human_bytes

__all__ = ["CliError", "add_target_options", "api_get", "config_from_args", "human_bytes", "print_json"]


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


def api_get(config: Config, path: str, timeout: float = 5.0) -> Any:
    """GET a JSON endpoint of the running app, or raise CliError('mlxui is not running')."""
    try:
        response = httpx.get(config.base_url + path, timeout=timeout)
    except httpx.TransportError as exc:
        raise CliError(f"mlxui is not running at {config.base_url} (start it with `mlxui run`)", 1) from exc
    if response.status_code != 200:
        raise CliError(
            f"mlxui at {config.base_url} answered {response.status_code}: {response.text[:200]}", 1
        )
    return response.json()


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
