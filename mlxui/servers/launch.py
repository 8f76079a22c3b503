"""What starting a server needs besides the state machine: its command, ports, its log file.

The flags are the ones the installed servers accept (tests/test_supervisor.py checks them
against each server's --help): mlx_vlm.server has no flags for temperature, top-p, the prompt
cache or template arguments other than thinking, so those are left out for vision profiles.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO

from mlxui.servers.profiles import Profile

SERVER_MODULES = {"lm": "mlx_lm.server", "vlm": "mlx_vlm.server"}
LOG_ROTATE_BYTES = 4 * 1024 * 1024  # at start, a bigger log moves to <name>.log.1
_SCAN_LIMIT_BYTES = 2 * 1024 * 1024
# How the servers report that loading failed while the process stays alive: mlx_lm logs
# "... - ERROR - ..." (then a traceback); uvicorn (mlx_vlm) logs "ERROR:    ...".
_ERROR_MARKERS = (" - ERROR - ",)
_ERROR_PREFIXES = ("ERROR:",)
_TRACEBACK = "Traceback (most recent call last)"
_RANK_PREFIX = re.compile(r"^\[rank \d+\] ")  # a distributed server's lines (distributed.RANK_ENTRY)


class StartFailure(Exception):
    """Why a start failed, as one sentence; the caller adds the log tail."""


def build_command(profile: Profile, port: int) -> list[str]:
    """The server's argument list (never a shell). Host is always 127.0.0.1."""
    kind = profile.kind
    cmd = [sys.executable, "-m", SERVER_MODULES[kind], "--model", profile.model]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    if profile.max_tokens is not None:
        cmd += ["--max-tokens", str(profile.max_tokens)]
    if profile.draft_model:
        cmd += ["--draft-model", profile.draft_model]
    args = profile.chat_template_args or {}
    if kind == "lm":
        if profile.temperature is not None:
            cmd += ["--temp", repr(profile.temperature)]
        if profile.top_p is not None:
            cmd += ["--top-p", repr(profile.top_p)]
        if profile.prompt_cache_size is not None:
            cmd += ["--prompt-cache-size", str(profile.prompt_cache_size)]
        if args:
            cmd += ["--chat-template-args", json.dumps(args, separators=(",", ":"))]
    elif args.get("enable_thinking") is True:
        cmd += ["--enable-thinking"]  # mlx_vlm's only template switch; its default is off
    return cmd


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """True when a server could not bind 127.0.0.1:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free, as for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def open_log(path: Path, cmd: list[str]) -> tuple[IO[bytes], int]:
    """Open the server's log for appending (rotated when big) with a header line for this run.

    Returns the file and the offset where this run's output starts.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    log = open(path, "ab")  # noqa: SIM115 -- handed to the child process, closed by the caller
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    log.write(f"\n=== mlxui {stamp}: {shlex.join(cmd)}\n".encode())
    log.flush()
    return log, log.tell()


def failure_line(path: Path, offset: int) -> str | None:
    """The line in which the server reported a load failure since `offset`, if any."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read(_SCAN_LIMIT_BYTES).decode(errors="replace")
            lines = [_RANK_PREFIX.sub("", line, count=1) for line in text.splitlines()]
    except OSError:  # not written yet: nothing has failed
        return None
    for index, line in enumerate(lines):
        if any(marker in line for marker in _ERROR_MARKERS) or line.startswith(_ERROR_PREFIXES):
            return line.strip()
        if line.startswith(_TRACEBACK):
            # The exception line ends the traceback; until it is written, wait for it (or the exit).
            ending = next((x for x in lines[index + 1 :] if x and not x[0].isspace()), None)
            return ending.strip() if ending else None
    return None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def arg_after(cmdline: list[str], flag: str) -> str | None:
    """The value that follows `flag` in an argument list, if any."""
    with contextlib.suppress(ValueError, IndexError):
        return cmdline[cmdline.index(flag) + 1]
    return None


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def model_problem(profile: Profile, hf_cache: Path) -> str | None:
    """Why `profile`'s model cannot be served, checked before spawning (blocking: reads files):
    gone, unreadable, no weights, or weights alone larger than this machine's memory."""
    from mlxui.hub.capabilities import read_local_capabilities
    from mlxui.hub.memory import estimate_memory, system_memory
    from mlxui.servers.distributed import local_share
    from mlxui.servers.profiles import resolve_model

    for field, model in (("model", profile.model), ("draft model", profile.draft_model)):
        if not model:
            continue
        folder = resolve_model(model, hf_cache)
        if folder is None:
            if model.startswith("/"):
                return (
                    f"The {field} folder {model} no longer exists (or has no config.json): remove "
                    f"the profile {profile.name} or point it at another model."
                )
            return f"The {field} {model} is not downloaded any more: download it again on the Models page."
        try:
            weights = sorted(folder.glob("*.safetensors"))
            if not weights:
                return (
                    f"The {field} folder {folder} has no weights (*.safetensors): is the download complete?"
                )
            with open(weights[0], "rb") as probe:
                probe.read(8)
        except OSError as exc:
            return f"The {field} in {folder} cannot be read: {exc.strerror or exc}."
        if field == "model":
            needed = sum(w.stat().st_size for w in weights)
            estimate = estimate_memory(read_local_capabilities(folder), weight_bytes=needed)
            total, _ = system_memory()
            here = estimate.weights_bytes * local_share(profile)  # distributed: this Mac's part
            if here > total:
                return (
                    f"{model} needs {here / 1e9:.1f} GB for its weights alone here; this "
                    f"machine has {total / 1e9:.1f} GB of memory. Choose a smaller (more quantized) model."
                )
    return None
