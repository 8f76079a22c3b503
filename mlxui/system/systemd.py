"""Linux: a systemd user unit, `~/.config/systemd/user/mlxui.service`, driven by `systemctl --user`.

Status comes from `systemctl --user show -p ActiveState -p UnitFileState`, whose `KEY=value` lines
are systemd's machine-readable output (unlike `status`).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlxui.system.autostart_common import (
    UNIT_NAME,
    AutostartError,
    AutostartStatus,
    CommandResult,
    LaunchSpec,
    Runner,
    run_tool,
)

ACTIVE_STATES = frozenset({"active", "activating", "reloading"})
ENABLED_STATES = frozenset({"enabled", "enabled-runtime", "linked", "linked-runtime"})


class SystemdUnit:
    manager = "systemd"

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        runner: Runner = run_tool,
        home: Path | None = None,
        config_home: Path | None = None,
    ) -> None:
        self.spec = spec
        self.runner = runner
        if config_home is None:
            xdg = os.environ.get("XDG_CONFIG_HOME")
            config_home = Path(xdg) if xdg else (Path.home() if home is None else home) / ".config"
        self.path = config_home / "systemd" / "user" / UNIT_NAME

    def unit_text(self) -> str:
        environment = " ".join(unit_word(f"{key}={value}") for key, value in self.spec.env.items())
        return "\n".join(
            [
                "[Unit]",
                "Description=mlxui: find, serve and chat with local MLX models",
                "",
                "[Service]",
                "Type=simple",
                f"ExecStart={exec_line(self.spec.argv)}",
                # Path settings are taken verbatim (quotes would become part of the path).
                f"WorkingDirectory={escape_specifiers(str(self.spec.working_dir))}",
                f"Environment={environment}",
                # Restart after a crash, not after a clean quit (Quit in the UI must stay quit).
                "Restart=on-failure",
                "RestartSec=5",
                "",
                "[Install]",
                "WantedBy=default.target",
                "",
            ]
        )

    def write(self) -> bool:
        """Write the unit file (atomically); True when its content changed."""
        content = self.unit_text()
        if self.path.is_file() and self.path.read_text() == content:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        Path(self.spec.working_dir).mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(UNIT_NAME + ".partial")
        partial.write_text(content)
        partial.replace(self.path)
        return True

    def enable(self) -> AutostartStatus:
        before = self._show()  # also fails early, before writing anything, without systemd
        changed = self.write()
        was_running = changed and before.get("ActiveState") in ACTIVE_STATES
        self._check(self._systemctl("daemon-reload"), "reload its units")
        self._check(self._systemctl("enable", "--now", UNIT_NAME), f"enable {UNIT_NAME}")
        # `enable --now` does not restart a running unit; restarting could stop this very app.
        detail = "running with the previous settings; they apply at the next start" if was_running else ""
        return self._status(detail)

    def disable(self) -> AutostartStatus:
        if self.path.is_file():
            # `disable --now` stops the app, possibly this process: afterwards the unit is already
            # disabled, so a leftover file (if we are stopped before removing it) does nothing.
            self._check(self._systemctl("disable", "--now", UNIT_NAME), f"disable {UNIT_NAME}")
            self.path.unlink(missing_ok=True)
            self._check(self._systemctl("daemon-reload"), "reload its units")
        return self._status()

    def restart(self) -> AutostartStatus:
        if not self._status().enabled:
            raise AutostartError("auto-start is not enabled; turn it on with `mlxui autostart enable`")
        self._check(self._systemctl("restart", UNIT_NAME), f"restart {UNIT_NAME}")
        return self._status()

    def status(self) -> AutostartStatus:
        return self._status()

    def _status(self, detail: str = "") -> AutostartStatus:
        props = self._show()
        return AutostartStatus(
            self.manager,
            str(self.path),
            self.path.is_file(),
            props.get("UnitFileState", "") in ENABLED_STATES,
            props.get("ActiveState", "") in ACTIVE_STATES,
            detail,
        )

    def _show(self) -> dict[str, str]:
        result = self._systemctl("show", "-p", "ActiveState", "-p", "UnitFileState", UNIT_NAME)
        self._check(result, "read the state of mlxui.service")
        props = {}
        for line in result.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                props[key.strip()] = value.strip()
        return props

    def _systemctl(self, *args: str) -> CommandResult:
        return self.runner(["systemctl", "--user", *args])

    @staticmethod
    def _check(result: CommandResult, what: str) -> None:
        if result.returncode != 0:
            hint = (
                " (no systemd user session is running for this login)"
                if "connect to bus" in result.message
                else ""
            )
            raise AutostartError(f"systemd could not {what}: {result.message}{hint}")


def exec_line(argv: tuple[str, ...]) -> str:
    """ExecStart='s value. systemd takes the program path without `$` expansion and refuses quote
    characters in it outright; the arguments after it do get `$` expanded."""
    program, *args = argv
    if any(ch in program for ch in "\"'"):
        raise AutostartError(f"systemd cannot start a program whose path contains quotes: {program}")
    return " ".join([unit_word(program), *(unit_word(arg, expands_vars=True) for arg in args)])


def unit_word(text: str, *, expands_vars: bool = False) -> str:
    """One word of an Exec*= or Environment= line (systemd.syntax(7), systemd.service(5)):
    C-style escapes inside double quotes, specifiers escaped everywhere, and `$` doubled where
    systemd would expand it as a variable."""
    escaped = escape_specifiers(text.replace("\\", "\\\\").replace('"', '\\"'))
    if expands_vars:
        escaped = escaped.replace("$", "$$")
    needs_quotes = not text or any(ch.isspace() or ch in "\"'\\;" for ch in text)
    return f'"{escaped}"' if needs_quotes else escaped


def escape_specifiers(text: str) -> str:
    return text.replace("%", "%%")
