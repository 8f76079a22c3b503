"""`mlxui models add PATH` and `mlxui models forget PATH`: model folders outside the Hugging Face
cache, as the Local tab's "Add folder" does. The list is kept in MLXUI_HOME's database, so a
running app sees a folder added here on its next listing."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from mlxui.cli.common import CliError, human_bytes, print_json
from mlxui.config import load_config


def add_commands(sub: Any) -> None:
    add = sub.add_parser("add", help="add a model folder (config.json + *.safetensors) to the local models")
    add.add_argument("path", metavar="PATH", help="the folder (relative paths are from here)")
    add.add_argument("--json", action="store_true", help="print JSON for scripts")
    add.set_defaults(handler=add_command)
    forget = sub.add_parser("forget", help="remove an added folder from the list (its files stay)")
    forget.add_argument("path", metavar="PATH", help="the folder, as `mlxui models list` shows it")
    forget.set_defaults(handler=forget_command)


def add_command(args: argparse.Namespace) -> int:
    from mlxui.hub.local import LocalModelError, add_local_folder

    path = Path(args.path).expanduser().resolve()

    async def run() -> Any:
        async with _database() as _:
            return await add_local_folder(path)

    try:
        entry = asyncio.run(run())
    except LocalModelError as exc:
        raise CliError(exc.message, 2) from exc
    if args.json:
        print_json(entry.to_dict())
        return 0
    print(
        f"Added {entry.path} ({human_bytes(entry.size_on_disk)}): {', '.join(entry.capabilities.badges()) or 'text'}."
    )
    print(f"Use it in a profile: `mlxui servers add NAME --model {entry.path}`.")
    return 0


def forget_command(args: argparse.Namespace) -> int:
    from mlxui.hub.local import LocalModelError, recorded_server_using, remove_local_folder

    path = Path(args.path).expanduser().resolve()

    async def run() -> None:
        async with _database() as _:
            await remove_local_folder(path, in_use=recorded_server_using)

    try:
        asyncio.run(run())
    except LocalModelError as exc:
        raise CliError(exc.message, 1) from exc
    print(f"Forgot {path}; its files are still there.")
    return 0


def _database() -> Any:
    from mlxui.cli.models_commands import database  # models_commands imports this module

    return database(load_config())
