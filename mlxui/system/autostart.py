"""Start mlxui at login: a LaunchAgent on macOS, a systemd user unit on Linux.

One agent/unit starts the app; which model servers then start is decided inside the app by each
profile's "start with mlxui" flag (so there are never several agents fighting over ports).

The CLI uses `autostart_manager(config)` directly. The Settings page uses the async functions,
which run the (blocking, subprocess-calling) work in a thread and never raise: a problem becomes
`AutostartOutcome.error`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mlxui.config import Config
from mlxui.system.autostart_common import (
    LABEL,
    UNIT_NAME,
    AutostartError,
    AutostartStatus,
    LaunchSpec,
    Runner,
    ToolMissing,
    launch_spec,
    run_tool,
    started_by_autostart,
)
from mlxui.system.launchd import LaunchAgent
from mlxui.system.systemd import SystemdUnit

__all__ = [
    "LABEL",
    "UNIT_NAME",
    "AutostartError",
    "AutostartManager",
    "AutostartOutcome",
    "AutostartStatus",
    "ToolMissing",
    "autostart_manager",
    "autostart_status",
    "disable_autostart",
    "enable_autostart",
    "launch_spec",
    "restart_autostart",
    "started_by_autostart",
]


class AutostartManager(Protocol):
    manager: str
    spec: LaunchSpec

    def enable(self) -> AutostartStatus: ...
    def disable(self) -> AutostartStatus: ...
    def restart(self) -> AutostartStatus: ...
    def status(self) -> AutostartStatus: ...


class UnsupportedPlatform(ToolMissing):
    pass


def autostart_manager(
    config: Config, *, platform: str | None = None, runner: Runner = run_tool
) -> AutostartManager:
    """The service manager for this platform (raises UnsupportedPlatform elsewhere)."""
    platform = sys.platform if platform is None else platform
    spec = launch_spec(config)
    if platform == "darwin":
        return LaunchAgent(spec, runner=runner)
    if platform.startswith("linux"):
        return SystemdUnit(spec, runner=runner)
    raise UnsupportedPlatform(
        f"auto-start is available on macOS (launchd) and Linux (systemd), not on {platform}"
    )


@dataclass(frozen=True)
class AutostartOutcome:
    """What the Settings page shows: the status when it could be read, else the reason why not."""

    status: AutostartStatus | None
    error: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.status and self.status.enabled)


async def autostart_status(config: Config) -> AutostartOutcome:
    return await _outcome(config, lambda manager: manager.status())


async def enable_autostart(config: Config) -> AutostartOutcome:
    return await _outcome(config, lambda manager: manager.enable())


async def disable_autostart(config: Config) -> AutostartOutcome:
    """Turn auto-start off. If this app was started by it (`started_by_autostart()`), this also
    stops the app: warn the user first."""
    return await _outcome(config, lambda manager: manager.disable())


async def restart_autostart(config: Config) -> AutostartOutcome:
    return await _outcome(config, lambda manager: manager.restart())


async def _outcome(config: Config, call: Callable[[AutostartManager], AutostartStatus]) -> AutostartOutcome:
    def work() -> AutostartOutcome:
        try:
            return AutostartOutcome(call(autostart_manager(config)))
        except AutostartError as exc:
            return AutostartOutcome(None, str(exc))
        except OSError as exc:  # writing the plist/unit file: permissions, full disk
            return AutostartOutcome(None, f"cannot write the auto-start file: {exc}")

    return await asyncio.to_thread(work)
