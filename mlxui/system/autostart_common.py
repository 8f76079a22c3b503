"""What the launchd and systemd back-ends share: how mlxui is launched, how the platform tool is
called, and what a status looks like.

The platform tools are called through a `Runner` (argument list in, `CommandResult` out) so tests
can put a fake `launchctl` / `systemctl` on PATH; nothing here ever goes through a shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlxui
from mlxui.config import DEFAULT_HOST, Config

LABEL = "io.mlxui.app"  # the one LaunchAgent; servers start inside the app, never as agents of their own
UNIT_NAME = "mlxui.service"
TOOL_TIMEOUT_S = 20.0
FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# Passed on so the agent sees the same model cache and Hub as the shell that enabled it.
# HF_TOKEN is deliberately not copied: a secret does not belong in a plist or unit file.
FORWARDED_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT")
MISSING_TOOL_HINTS = {
    "launchctl": "launchctl not found: auto-start needs macOS's launchd",
    "systemctl": "systemctl not found: auto-start on Linux needs systemd",
}


class AutostartError(Exception):
    """Auto-start could not be changed or read; the message is for the user."""

    exit_code = 1


class ToolMissing(AutostartError):
    """The platform's service manager is not there (not macOS/systemd, or not on PATH)."""

    exit_code = 2


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def message(self) -> str:
        """The tool's own explanation: its first non-empty output line."""
        for line in (self.stderr + "\n" + self.stdout).splitlines():
            if line.strip():
                return line.strip()
        return f"exit status {self.returncode}"


Runner = Callable[[Sequence[str]], CommandResult]


def run_tool(argv: Sequence[str], timeout: float = TOOL_TIMEOUT_S) -> CommandResult:
    """Run a service-manager command (never through a shell), bounded by `timeout`."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        tool = Path(argv[0]).name
        raise ToolMissing(MISSING_TOOL_HINTS.get(tool, f"{tool} not found")) from exc
    except subprocess.TimeoutExpired as exc:
        raise AutostartError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from exc
    return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class AutostartStatus:
    """Where auto-start stands. `enabled`: mlxui starts at the next login; `running`: the
    service manager has it loaded/active right now."""

    manager: str  # "launchd" or "systemd"
    path: str  # the plist or unit file
    installed: bool
    enabled: bool
    running: bool
    detail: str = ""  # a note for the user, e.g. that new settings apply at the next login

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LaunchSpec:
    """The command line, environment and working directory the service manager starts."""

    argv: tuple[str, ...]
    env: dict[str, str]
    working_dir: Path
    port: int


def launch_spec(config: Config, environ: Mapping[str, str] | None = None) -> LaunchSpec:
    """How to start this very mlxui at login: same interpreter, same data dir, same port."""
    environ = os.environ if environ is None else environ
    # abspath, not resolve(): a venv's python is a symlink that must stay one to find the venv.
    argv = [os.path.abspath(sys.executable), "-m", "mlxui", "run", "--no-browser", "--port", str(config.port)]
    if config.host != DEFAULT_HOST:
        argv += ["--host", config.host]
    env = {
        "PATH": environ.get("PATH") or FALLBACK_PATH,
        "MLXUI_HOME": str(config.home),
        "PYTHONUNBUFFERED": "1",  # log lines reach the log file as they happen
    }
    env.update({name: environ[name] for name in FORWARDED_ENV if environ.get(name)})
    source_root = _source_checkout_root()
    if source_root is not None:
        env["PYTHONPATH"] = str(source_root)
    return LaunchSpec(tuple(argv), env, config.home, config.port)


def _source_checkout_root() -> Path | None:
    """The checkout mlxui runs from when it is not installed into site-packages (`scripts/run`):
    the agent starts in another directory and would not find the package otherwise."""
    package_parent = Path(mlxui.__file__).resolve().parent.parent
    if package_parent.name in ("site-packages", "dist-packages"):
        return None
    return package_parent


def started_by_autostart(environ: Mapping[str, str] | None = None) -> bool:
    """True when this process was started by the login agent/unit: disabling auto-start then also
    stops this very app (the Settings page should say so before it does)."""
    environ = os.environ if environ is None else environ
    if environ.get("XPC_SERVICE_NAME") == LABEL:  # launchd names the job in its environment
        return True
    try:
        cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return False
    return f"/{UNIT_NAME}" in cgroup
