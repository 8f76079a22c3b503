"""`mlxui peers [list|add URL [--key K] [--name N]|remove NAME]`: the other mlxui machines whose
models this app lists and forwards to, through the running app's JSON API (`/api/peers`).

A key is never printed back: `list` says only whether one is set.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlxui.cli.common import add_target_options, app_client, config_from_args, print_json


def add_commands(commands: Any) -> None:
    peers = commands.add_parser(
        "peers",
        help="other mlxui machines whose models this one serves too",
        description="List, add or remove other mlxui machines. Without an action: list them.",
    )
    add_target_options(peers)
    peers.add_argument("--json", action="store_true", help="print JSON for scripts")
    peers.set_defaults(handler=list_command)
    actions = peers.add_subparsers(dest="peers_action", metavar="ACTION")
    list_ = actions.add_parser("list", help="each machine, up or down, and its models")
    add = actions.add_parser("add", help="add a machine, e.g. `add http://studio.local:8765 --key K`")
    add.add_argument("url", help="the other mlxui's address (http:// or https://)")
    add.add_argument("--key", help="that machine's gateway key, when it has one")
    add.add_argument("--name", help="how its models are named here (<name>/<model>); default: its host")
    remove = actions.add_parser("remove", help="remove a machine")
    remove.add_argument("name", help="the machine's name, as `mlxui peers list` shows it")
    for parser, handler in ((list_, list_command), (add, add_command), (remove, remove_command)):
        add_target_options(parser)
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        parser.set_defaults(handler=handler)


def list_command(args: argparse.Namespace) -> int:
    peers = app_client(config_from_args(args)).call("GET", "/api/peers")
    if args.json:
        print_json(peers)
    elif not peers:
        print("No other mlxui machines. Add one: mlxui peers add http://HOST:PORT --key KEY")
    for peer in [] if args.json else peers:
        print(_line(peer))
        for model in peer["models"]:
            print(f"    {model}")
    return 0


def add_command(args: argparse.Namespace) -> int:
    body = {"url": args.url, "key": args.key, "name": args.name}
    peer = app_client(config_from_args(args)).call("POST", "/api/peers", json=body)
    if args.json:
        print_json(peer)
    else:
        print(f"added {_line(peer)}")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    answer = app_client(config_from_args(args)).call("DELETE", f"/api/peers/{args.name}")
    if args.json:
        print_json(answer)
    else:
        print(f"removed {args.name}")
    return 0


def _line(peer: dict[str, Any]) -> str:
    state = f"up, {len(peer['models'])} models" if peer["up"] else f"down: {peer['reason']}"
    key = "key set" if peer["key_set"] else "no key"
    return f"{peer['name']}  {peer['url']}  ({key})  {state}"
