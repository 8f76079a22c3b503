"""macOS: one LaunchAgent, `io.mlxui.app`, managed with launchctl's modern verbs.

`launchctl print`'s text is not an interface, so only its exit status is used. `bootstrap` of an
agent that is already loaded fails with the generic exit 5 (EIO; 37 on some releases), so enable
asks `print` first and, after a failed bootstrap, again to tell "loaded meanwhile" from a failure.
"""

from __future__ import annotations

import os
import plistlib
from pathlib import Path
from typing import Any

from mlxui.system.autostart_common import (
    LABEL,
    AutostartError,
    AutostartStatus,
    CommandResult,
    LaunchSpec,
    Runner,
    run_tool,
)

NOT_LOADED_EXITS = frozenset({113, 3})  # 113 "Could not find service"; 3 ESRCH on older macOS


class LaunchAgent:
    manager = "launchd"

    def __init__(
        self, spec: LaunchSpec, *, runner: Runner = run_tool, home: Path | None = None, uid: int | None = None
    ) -> None:
        self.spec = spec
        self.runner = runner
        home = Path.home() if home is None else home
        self.path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        self.logs_dir = home / "Library" / "Logs" / "mlxui"
        self.domain = f"gui/{os.getuid() if uid is None else uid}"
        self.service_target = f"{self.domain}/{LABEL}"

    def plist(self) -> dict[str, Any]:
        return {
            "Label": LABEL,
            "ProgramArguments": list(self.spec.argv),
            "EnvironmentVariables": dict(self.spec.env),
            "WorkingDirectory": str(self.spec.working_dir),
            "RunAtLoad": True,
            # Restart after a crash, not after a clean quit (Quit in the UI must stay quit).
            "KeepAlive": {"SuccessfulExit": False},
            "ProcessType": "Interactive",
            "StandardOutPath": str(self.logs_dir / "mlxui.out.log"),
            "StandardErrorPath": str(self.logs_dir / "mlxui.err.log"),
        }

    def write(self) -> bool:
        """Write the plist (atomically); True when its content changed."""
        content = plistlib.dumps(self.plist(), fmt=plistlib.FMT_XML)
        if self.path.is_file() and self.path.read_bytes() == content:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        Path(self.spec.working_dir).mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".plist.partial")
        partial.write_bytes(content)
        partial.replace(self.path)
        return True

    def enable(self) -> AutostartStatus:
        was_loaded = self._loaded()  # also fails early, before writing anything, without launchctl
        changed = self.write()
        if was_loaded:
            # Booting it out to reload the plist would stop the running app (maybe this very one).
            note = "; the new settings apply at the next login" if changed else ""
            return self._status("already enabled" + note)
        result = self._launchctl("bootstrap", self.domain, str(self.path))
        if result.returncode != 0 and not self._loaded():  # 5 also means "loaded meanwhile"
            raise AutostartError(f"launchctl could not load {self.path}: {result.message}")
        return self._status()

    def disable(self) -> AutostartStatus:
        # The plist goes first: bootout stops the app, and that may be the process running this.
        self.path.unlink(missing_ok=True)
        result = self._launchctl("bootout", self.service_target)
        if result.returncode != 0 and result.returncode not in NOT_LOADED_EXITS:
            raise AutostartError(f"launchctl could not unload {LABEL}: {result.message}")
        return self._status()

    def restart(self) -> AutostartStatus:
        result = self._launchctl("kickstart", "-k", self.service_target)
        if result.returncode in NOT_LOADED_EXITS:
            raise AutostartError("auto-start is not enabled; turn it on with `mlxui autostart enable`")
        if result.returncode != 0:
            raise AutostartError(f"launchctl could not restart {LABEL}: {result.message}")
        return self._status()

    def status(self) -> AutostartStatus:
        return self._status()

    def _status(self, detail: str = "") -> AutostartStatus:
        installed = self.path.is_file()
        # launchd loads every plist in ~/Library/LaunchAgents at login: present means enabled.
        return AutostartStatus(self.manager, str(self.path), installed, installed, self._loaded(), detail)

    def _loaded(self) -> bool:
        return self._launchctl("print", self.service_target).returncode == 0

    def _launchctl(self, *args: str) -> CommandResult:
        return self.runner(["launchctl", *args])
