"""`mlxui servers list|add|start|stop|restart|logs|export|import|rm|stop-all`: the running app's
servers from a terminal, through its HTTP API (/api/servers, /api/profiles).

Exit codes follow mlxui/cli/__init__.py: 1 when the app is not running, the profile does not exist
or a server failed; 2 for values the app refuses (field errors, one per line); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlxui.app_client import AppApiError, AppClient
from mlxui.cli.common import CliError, add_target_options, app_client, config_from_args, print_json
from mlxui.servers.profile_rules import NAME_PATTERN

YAML_BODY = {"Content-Type": "application/yaml"}  # the app takes only declared bodies (docs/security.md)
START_TIMEOUT_S = 600.0  # the app gives up on a load long before (its ready timeout)
POLL_S = 0.5


def add_commands(commands: Any) -> None:
    servers = commands.add_parser("servers", help="list, add, start, stop and follow model servers")
    sub = servers.add_subparsers(dest="servers_command", metavar="ACTION", required=True)

    list_ = _action(sub, "list", "profiles, running local models and their servers' state", list_command)
    list_.add_argument("--json", action="store_true", help="print JSON for scripts")
    list_.add_argument("--all", action="store_true", help="also every local model that is not running")

    add = sub.add_parser("add", help="add a server profile for a downloaded model or a model folder")
    add.add_argument("name", metavar="NAME", help="profile name (letters, digits, . _ -)")
    add.add_argument(
        "--model", required=True, metavar="REPO_OR_PATH", help="org/name in the HF cache, or a folder"
    )
    add.add_argument(
        "--port", dest="server_port", type=int, metavar="P", help="fixed port (default: a free one)"
    )
    add.add_argument(
        "--ttl",
        type=int,
        metavar="SECONDS",
        help="stop after this long unused (on-demand starts; default: the setting default-idle-ttl)",
    )
    add.add_argument("--temp", type=float, metavar="T", help="default sampling temperature")
    add.add_argument("--max-tokens", type=int, metavar="N", help="default maximum tokens per reply")
    add.add_argument("--autostart", action="store_true", help="start this server when mlxui starts")
    add.add_argument("--pin", dest="pinned", action="store_true",
                     help="keep it loaded: never stopped to make room for another model")  # fmt: skip
    _distributed_options(add)
    add.add_argument("--json", action="store_true", help="print the saved profile as JSON")
    # --port is the profile's here, so the app is addressed with --app-host/--app-port (or MLXUI_*).
    add.add_argument(
        "--app-host", dest="host", help="address of the running app (default: MLXUI_HOST or 127.0.0.1)"
    )
    add.add_argument(
        "--app-port", dest="port", type=int, help="port of the running app (default: MLXUI_PORT or 8765)"
    )
    add.set_defaults(handler=add_command)

    start = _action(sub, "start", "start a server and wait until it answers", start_command, named=True)
    start.add_argument("--json", action="store_true", help="print the ready server as JSON")
    restart = _action(sub, "restart", "stop and start again (a new process)", restart_command, named=True)
    restart.add_argument("--json", action="store_true", help="print the ready server as JSON")
    _action(sub, "stop", "stop a server (SIGTERM, then SIGKILL)", stop_command, named=True)
    _action(sub, "stop-all", "stop every running server", stop_all_command)

    logs = _action(sub, "logs", "show the end of a server's log", logs_command, named=True)
    logs.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)")

    export = _action(sub, "export", "write every profile to a YAML file", export_command)
    export.add_argument("file", metavar="FILE", help="where to write (- for standard output)")
    import_ = _action(sub, "import", "add the profiles of a YAML export (all or nothing)", import_command)
    import_.add_argument("file", metavar="FILE", help="an export (- for standard input)")
    import_.add_argument("--replace", action="store_true", help="overwrite profiles with the same name")

    rm = _action(sub, "rm", "delete a profile (a running server is stopped first)", rm_command, named=True)
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _action(sub: Any, name: str, help_: str, handler: Any, *, named: bool = False) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".")
    if named:
        parser.add_argument("name", metavar="NAME", help="profile name, or a model's repo id or name")
    add_target_options(parser)
    parser.set_defaults(handler=handler)
    return parser


# ----- commands -----------------------------------------------------------------------------------
def list_command(args: argparse.Namespace) -> int:
    servers = _api(args).call("GET", "/api/servers?all=true" if args.all else "/api/servers")
    if args.json:
        print_json(servers)
        return 0
    if not servers:
        print(
            "No server profiles and no local model running. Start a downloaded model by name with\n"
            "`mlxui servers start REPO_ID`, or add a profile with `mlxui servers add NAME --model REPO_OR_PATH`."
        )
        return 0
    width = max(4, *(len(s["name"]) for s in servers))
    print(f"{'NAME':<{width}}  {'STATE':<8}  {'PORT':>5}  {'PID':>7}  MODEL")
    for s in servers:
        port = s["port"] or s["profile"]["port"] or "auto"
        print(f"{s['name']:<{width}}  {s['state']:<8}  {port!s:>5}  {s['pid'] or '-'!s:>7}  {s['model']}")
        if s["error"]:
            print(f"{'':<{width}}  {s['error'].splitlines()[0]}")
    return 0


def _distributed_options(add: argparse.ArgumentParser) -> None:
    """A model split over several processes or machines (mlx.launch; docs/distributed.md)."""
    group = add.add_argument_group("distributed (MLX's own engine, mlx.launch)")
    group.add_argument(
        "--ranks",
        type=int,
        metavar="N",
        help="processes per host (without --hosts: N local ranks on this machine)",
    )
    group.add_argument(
        "--hosts",
        metavar="A,B[,C]",
        help="hosts to run on, this machine first (names or IPs; ring needs IPs)",
    )
    group.add_argument("--hostfile", metavar="PATH", help="a hostfile from mlx.distributed_config instead")
    group.add_argument("--backend", choices=("ring", "jaccl", "mpi"), help="default: ring")
    group.add_argument(
        "--remote-python", metavar="PATH", help="the Python on the other hosts (default: this one's path)"
    )
    group.add_argument("--pipeline", action="store_true",
                       help="pipeline instead of tensor parallelism (some model families)")  # fmt: skip


def add_command(args: argparse.Namespace) -> int:
    values = {
        "name": args.name, "model": args.model, "port": args.server_port, "idle_ttl": args.ttl,
        "temperature": args.temp, "max_tokens": args.max_tokens, "autostart": args.autostart,
        "pinned": args.pinned or None, "ranks": args.ranks, "backend": args.backend,
        "hosts": args.hosts.split(",") if args.hosts else None, "hostfile": args.hostfile,
        "remote_python": args.remote_python, "parallel": "pipeline" if args.pipeline else None,
    }  # fmt: skip
    # Only what was given: a left-out idle stop takes the app's default, an explicit null means never.
    given = {key: value for key, value in values.items() if value is not None}
    profile = _api(args).call("POST", "/api/profiles", json=given)
    if args.json:
        print_json(profile)
        return 0
    port = profile["port"] or "auto"
    print(f"Added {profile['name']}: {profile['model']} ({profile['kind']} server, port {port}).")
    if profile.get("ranks") or profile.get("hosts") or profile.get("hostfile"):
        where = ",".join(profile["hosts"] or []) or profile["hostfile"] or "this machine"
        print(
            f"Distributed: {profile['ranks'] or 1} rank(s) per host on {where}, {profile['backend'] or 'ring'}."
        )
    print(f"Start it with `mlxui servers start {profile['name']}`.")
    return 0


def start_command(args: argparse.Namespace) -> int:
    return _start_and_wait(args, "start")


def restart_command(args: argparse.Namespace) -> int:
    return _start_and_wait(args, "restart")


def stop_command(args: argparse.Namespace) -> int:
    server = _api(args).call("POST", f"/api/servers/{_seg(args.name)}/stop", timeout=60.0)
    print(f"{server['name']} is {server['state']}.")
    return 0


def stop_all_command(args: argparse.Namespace) -> int:
    result = _api(args).call("POST", "/api/servers/stop-all", timeout=120.0)
    print(f"Stopped: {', '.join(result['stopped'])}." if result["stopped"] else "No server was running.")
    return 0


def logs_command(args: argparse.Namespace) -> int:
    api = _api(args)
    if not 0 <= args.lines <= 5000:
        raise CliError("-n must be between 0 and 5000")
    path = f"/api/servers/{_seg(args.name)}/logs"
    if not args.follow:
        sys.stdout.write(api.text("GET", path, params={"lines": args.lines}))
        sys.stdout.flush()
        return 0
    lines = args.lines
    try:
        while True:  # the app ends a follow stream after a day; continue with a fresh one
            for chunk in api.stream_text(f"{path}/stream", params={"lines": lines}):
                sys.stdout.write(chunk)
                sys.stdout.flush()
            lines = 0
    except KeyboardInterrupt:
        sys.stdout.write("\n")  # Ctrl-C is how a follow ends: not an error
        return 0


def export_command(args: argparse.Namespace) -> int:
    import yaml

    text = _api(args).text("GET", "/api/profiles/export")
    count = len((yaml.safe_load(text) or {}).get("profiles", []))
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"Cannot write {args.file}: {exc.strerror or exc}", 1) from exc
    print(f"Exported {count} profile{'s' if count != 1 else ''} to {args.file}.")
    return 0


def import_command(args: argparse.Namespace) -> int:
    api = _api(args)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"Cannot read {args.file}: {exc.strerror or exc}", 1) from exc
    params = {"replace": "true"} if args.replace else None
    result = api.call("POST", "/api/profiles/import", params=params, content=data, headers=YAML_BODY)
    names = result["imported"]
    print(f"Imported {len(names)} profile{'s' if len(names) != 1 else ''}: {', '.join(names) or '-'}.")
    return 0


def rm_command(args: argparse.Namespace) -> int:
    api = _api(args)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"Refusing to delete the profile {args.name} without confirmation: add --yes", 2)
        try:
            answer = input(f"Delete the server profile {args.name}? A running server is stopped. [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    result = api.call("DELETE", f"/api/profiles/{_profile_seg(args.name)}")
    stopped = "Stopped its server and deleted" if result.get("stopped") else "Deleted"
    print(f"{stopped} the profile {args.name}.")
    return 0


# ----- start with progress ------------------------------------------------------------------------
def _start_and_wait(args: argparse.Namespace, verb: str) -> int:
    """POST start/restart (it answers when the server is ready or failed) in a thread, and show the
    states the server passes meanwhile: `name: starting... loading..... ready` on stderr."""
    api = _api(args)
    path = f"/api/servers/{_seg(args.name)}"
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["server"] = api.call("POST", f"{path}/{verb}", timeout=START_TIMEOUT_S)
        except AppApiError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=call, name=f"mlxui {verb}", daemon=True)
    worker.start()
    progress = _Progress(args.name)
    try:
        while worker.is_alive():
            worker.join(POLL_S)
            if worker.is_alive():
                progress.show(_state_now(api, path))
    except KeyboardInterrupt:
        progress.end()
        raise CliError(
            f"Stopped waiting; mlxui goes on starting {args.name} (`mlxui servers stop {args.name}` cancels).",
            130,
        ) from None
    if "error" in outcome:
        progress.end(outcome["error"].server_state or "failed")
        raise outcome["error"]
    server = outcome["server"]
    progress.end(server["state"])
    if args.json:
        print_json(server)
    else:
        print(f"{server['name']} is ready at http://127.0.0.1:{server['port']} (pid {server['pid']}).")
    return 0


_SETTLED = frozenset({"ready", "failed", "crashed", "stopped"})


class _Progress:
    """One stderr line that grows: a dot per poll, the state's name when it changes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: str | None = None
        self.started = False

    def show(self, state: str | None) -> None:
        if not self.started:
            sys.stderr.write(f"{self.name}:")
            self.started = True
        if state is not None and state != self.state:
            sys.stderr.write(f" {state}")
            self.state = state
        if state not in _SETTLED:  # dots mean "still waiting"; none after the final word
            sys.stderr.write(".")
        sys.stderr.flush()

    def end(self, state: str | None = None) -> None:
        if self.started:
            sys.stderr.write(f" {state}\n" if state and state != self.state else "\n")
            sys.stderr.flush()


def _state_now(api: AppClient, path: str) -> str | None:
    try:
        return api.call("GET", path)["state"]
    except AppApiError:
        return None  # the start's own answer says what went wrong


# ----- HTTP ---------------------------------------------------------------------------------------
def _api(args: argparse.Namespace) -> AppClient:
    return app_client(config_from_args(args))


def _seg(name: str) -> str:
    """A server's name (a profile's, or a model's repo id, folder or short name) for a URL path:
    quoted whole, so a "/", "?" or "#" in it cannot reach another route."""
    dots_only = any(part and set(part) == {"."} for part in name.split("/"))  # "." and ".." are path steps
    if not name or not name.isprintable() or dots_only:
        raise CliError(f"{name!r} is not a profile or model name.", 2)
    return quote(name, safe="")


def _profile_seg(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise CliError(f"{name!r} is not a profile name (letters, digits, dots, dashes, underscores).", 2)
    return name
