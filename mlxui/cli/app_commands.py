"""`mlxui run`, `mlxui status`, `mlxui open`."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import webbrowser
from typing import Any

from mlxui.cli.common import CliError, add_target_options, app_client, config_from_args, print_json
from mlxui.config import Config, check_port
from mlxui.format import human_bytes


def add_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="start mlxui (web UI, API and gateway)")
    run.add_argument(
        "--host", help="address to bind (default 127.0.0.1; anything else is reachable by others)"
    )
    run.add_argument("--port", type=int, help="port to bind (default 8765)")
    run.add_argument("--native", action="store_true", help="open in a native window instead of a browser tab")
    run.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    run.set_defaults(handler=run_command)

    status = commands.add_parser("status", help="show what the running mlxui is doing")
    add_target_options(status)
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(handler=status_command)

    open_ = commands.add_parser("open", help="open the running mlxui in the browser")
    add_target_options(open_)
    open_.set_defaults(handler=open_command)


def run_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_port(config.port)
    if not config.is_loopback:
        print(
            f"mlxui: WARNING: binding to {config.host}: anyone who can reach this machine on port "
            f"{config.port} can use mlxui and its models.",
            file=sys.stderr,
        )
    ensure_port_free(config)
    if args.native:
        ensure_native_available()
    from mlxui.app import serve  # heavy import: only when really starting

    print(f"mlxui: serving {config.base_url} (data in {config.home})", file=sys.stderr)
    serve(config, native=args.native, show=not args.no_browser)
    return 0


def ensure_port_free(config: Config) -> None:
    family = socket.AF_INET6 if ":" in config.host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((config.host.strip("[]"), config.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(f"port {config.port} is in use; choose another with --port") from exc
            raise CliError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from exc


def ensure_native_available() -> None:
    from mlxui.system.native import native_problem

    problem = native_problem()
    if problem is not None:
        raise CliError(problem)


def status_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    status = app_client(config).status(timeout=5.0)
    if args.json:
        print_json(status)
        return 0
    print(f"mlxui {status['version']} at {status['url']} · MLX backend: {status['backend']}")
    servers = status.get("servers", [])
    print(f"Servers: {len(servers) or 'none'}")
    for server in servers:
        tps = server.get("tokens_per_s")
        print(
            f"  {server.get('name', '?'):<24} {server.get('state', '?'):<9} {server.get('model', ''):<40} "
            f"mem {human_bytes(server.get('rss_bytes'))}  {tps if tps is not None else 'n/a'} tok/s"
        )
    downloads = status.get("downloads", [])
    print(f"Downloads: {len(downloads) or 'none'}")
    for item in downloads:
        total = item.get("bytes_total") or 0
        pct = f"{100 * item.get('bytes_done', 0) / total:.0f}%" if total else "?"
        print(f"  {item.get('repo_id', '?'):<48} {item.get('state', '?'):<12} {pct}")
    return 0


def open_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    app_client(config).call("GET", "/healthz", timeout=5.0)
    webbrowser.open(config.base_url)
    print(f"opened {config.base_url}")
    return 0
