"""Auto-start at login: the LaunchAgent plist and launchctl calls (fake launchctl on PATH), the
systemd user unit (checked by the real `systemd-analyze verify`) and systemctl calls (fake
systemctl), the async API the Settings page uses, and `mlxui autostart` as a user types it."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mlxui import __version__
from mlxui.config import Config
from mlxui.system.autostart import (
    AutostartError,
    ToolMissing,
    autostart_manager,
    autostart_status,
    disable_autostart,
    enable_autostart,
    started_by_autostart,
)
from mlxui.system.systemd import SystemdUnit

FAKEBIN = Path(__file__).parent / "fakebin"
ROOT = Path(__file__).resolve().parent.parent
UID = os.getuid()
TARGET = f"gui/{UID}/io.mlxui.app"


class FakeTools:
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "calls.jsonl"
        self.state = tmp_path / "fake-state.json"

    def calls(self, tool: str) -> list[list[str]]:
        if not self.log.is_file():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [entry["argv"] for entry in lines if entry["tool"] == tool]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "user home"  # a space, as in many macOS home folders' subpaths
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


@pytest.fixture
def fake(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools(tmp_path)
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(FAKEBIN), str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    monkeypatch.setenv("FAKEBIN_LOG", str(tools.log))
    monkeypatch.setenv("FAKEBIN_STATE", str(tools.state))
    monkeypatch.delenv("FAKEBIN_FORCE", raising=False)
    monkeypatch.delenv("FAKEBIN_FORCE_TIMES", raising=False)
    return tools


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(home=tmp_path / "mlxui data", port=8799, hf_cache=tmp_path / "hf")


# --- macOS: LaunchAgent ------------------------------------------------------------------------


def test_plist_starts_this_mlxui_with_absolute_paths(fake, home, config, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_in_a_plist")
    agent = autostart_manager(config, platform="darwin")
    agent.enable()

    path = home / "Library" / "LaunchAgents" / "io.mlxui.app.plist"
    assert agent.status().path == str(path)
    assert "hf_secret" not in path.read_text()
    plist = plistlib.loads(path.read_bytes())
    assert plist["Label"] == "io.mlxui.app"
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ProcessType"] == "Interactive"
    program = plist["ProgramArguments"]
    assert os.path.isabs(program[0]) and os.access(program[0], os.X_OK)
    assert program[0] == os.path.abspath(sys.executable)
    assert program[1:] == ["-m", "mlxui", "run", "--no-browser", "--port", "8799"]
    env = plist["EnvironmentVariables"]
    assert env["MLXUI_HOME"] == str(config.home)
    assert env["HF_HUB_CACHE"] == str(tmp_path / "hf")
    assert env["PATH"]
    logs = home / "Library" / "Logs" / "mlxui"
    assert logs.is_dir()
    assert Path(plist["StandardOutPath"]).parent == logs == Path(plist["StandardErrorPath"]).parent
    assert Path(plist["WorkingDirectory"]).is_dir()

    # What launchd would run finds this mlxui from the agent's directory with the agent's environment.
    result = subprocess.run(
        [*program[:3], "--version"],
        env=plist["EnvironmentVariables"],
        cwd=plist["WorkingDirectory"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == f"mlxui {__version__}", result.stderr


def test_launchd_enable_status_disable(fake, home, config) -> None:
    agent = autostart_manager(config, platform="darwin")
    plist = str(home / "Library" / "LaunchAgents" / "io.mlxui.app.plist")

    status = agent.enable()
    assert (status.enabled, status.running) == (True, True)
    assert fake.calls("launchctl") == [
        ["print", TARGET],
        ["bootstrap", f"gui/{UID}", plist],
        ["print", TARGET],
    ]

    fake.clear()
    status = agent.status()
    assert (status.installed, status.running) == (True, True)
    assert fake.calls("launchctl") == [["print", TARGET]]  # only its exit status is used

    fake.clear()
    status = agent.disable()
    assert (status.installed, status.enabled, status.running) == (False, False, False)
    assert not Path(plist).exists()
    assert fake.calls("launchctl") == [["bootout", TARGET], ["print", TARGET]]


def test_launchd_enable_when_already_loaded_is_fine(fake, config) -> None:
    agent = autostart_manager(config, platform="darwin")
    agent.enable()
    fake.clear()
    status = agent.enable()
    assert status.enabled and status.running
    assert status.detail == "already enabled"
    assert fake.calls("launchctl") == [["print", TARGET], ["print", TARGET]]

    moved = autostart_manager(replace(config, port=8800), platform="darwin")
    status = moved.enable()
    assert "next login" in status.detail
    assert "8800" in plistlib.loads(Path(status.path).read_bytes())["ProgramArguments"]
    assert not any(call[0] == "bootout" for call in fake.calls("launchctl"))  # never stops the app


def test_launchd_disable_when_not_loaded_is_fine(fake, config) -> None:
    status = autostart_manager(config, platform="darwin").disable()  # bootout answers 113
    assert not status.enabled and not status.running
    assert fake.calls("launchctl")[0] == ["bootout", TARGET]


def test_launchd_bootstrap_answering_5_for_a_loaded_agent_is_fine(fake, config, monkeypatch) -> None:
    agent = autostart_manager(config, platform="darwin")
    agent.enable()
    fake.clear()
    # Loaded by someone else between our `print` and our `bootstrap`, which then answers 5 (EIO).
    monkeypatch.setenv("FAKEBIN_FORCE", "print:113:Could not find service")
    monkeypatch.setenv("FAKEBIN_FORCE_TIMES", "1")
    status = agent.enable()
    assert status.running
    assert [call[0] for call in fake.calls("launchctl")] == ["print", "bootstrap", "print", "print"]


def test_launchd_failures_are_reported(fake, config, monkeypatch) -> None:
    agent = autostart_manager(config, platform="darwin")
    monkeypatch.setenv("FAKEBIN_FORCE", "bootstrap:5:Bootstrap failed: 5: Input/output error")
    with pytest.raises(AutostartError, match="could not load .*Bootstrap failed: 5: Input/output error"):
        agent.enable()
    monkeypatch.setenv("FAKEBIN_FORCE", "bootout:1:Boot-out failed: 1: Operation not permitted")
    with pytest.raises(AutostartError, match="Operation not permitted"):
        agent.disable()


def test_launchd_restart_uses_kickstart(fake, config) -> None:
    agent = autostart_manager(config, platform="darwin")
    with pytest.raises(AutostartError, match="not enabled"):
        agent.restart()
    agent.enable()
    fake.clear()
    assert agent.restart().running
    assert fake.calls("launchctl")[0] == ["kickstart", "-k", TARGET]


def test_missing_launchctl_says_launchd_is_needed(home, config, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing) as caught:
        autostart_manager(config, platform="darwin").enable()
    assert str(caught.value) == "launchctl not found: auto-start needs macOS's launchd"


# --- Linux: systemd user unit ------------------------------------------------------------------


def systemd_verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unit_file_passes_systemd_analyze_verify(fake, home, config, tmp_path) -> None:
    unit = autostart_manager(config, platform="linux")
    unit.write()
    path = home / ".config" / "systemd" / "user" / "mlxui.service"
    text = path.read_text()
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert f"ExecStart={os.path.abspath(sys.executable)} -m mlxui run --no-browser --port 8799" in text
    result = systemd_verify(path, tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_unit_file_quotes_odd_paths(fake, home, config, tmp_path) -> None:
    """Spaces, % and $ in paths and values: systemd must still find the interpreter and directory."""
    odd = tmp_path / "py 100% $HOME"
    odd.mkdir()
    (odd / "python").symlink_to(sys.executable)
    spec = autostart_manager(config, platform="linux").spec
    argv = (str(odd / "python"), *spec.argv[1:], "--note", 'a "b" 50% $c')
    unit = SystemdUnit(replace(spec, argv=argv, working_dir=odd, env={**spec.env, "NOTE": 'a "b" 50% $c'}))
    unit.write()
    result = systemd_verify(unit.path, tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_systemd_enable_status_disable(fake, home, config) -> None:
    unit = autostart_manager(config, platform="linux")
    path = home / ".config" / "systemd" / "user" / "mlxui.service"
    show = ["--user", "show", "-p", "ActiveState", "-p", "UnitFileState", "mlxui.service"]

    status = unit.enable()
    assert (status.installed, status.enabled, status.running) == (True, True, True)
    assert fake.calls("systemctl") == [
        show,
        ["--user", "daemon-reload"],
        ["--user", "enable", "--now", "mlxui.service"],
        show,
    ]
    fake.clear()
    assert unit.enable().enabled  # again: idempotent, the file is unchanged
    assert ["--user", "enable", "--now", "mlxui.service"] in fake.calls("systemctl")

    fake.clear()
    status = unit.disable()
    assert (status.installed, status.enabled, status.running) == (False, False, False)
    assert not path.exists()
    assert fake.calls("systemctl") == [
        ["--user", "disable", "--now", "mlxui.service"],
        ["--user", "daemon-reload"],
        show,
    ]
    fake.clear()
    assert not unit.disable().enabled  # again: nothing to disable, no error
    assert fake.calls("systemctl") == [show]


def test_systemd_errors_are_reported(fake, config, monkeypatch) -> None:
    unit = autostart_manager(config, platform="linux")
    monkeypatch.setenv("FAKEBIN_FORCE", "show:1:Failed to connect to bus: No medium found")
    with pytest.raises(AutostartError, match="Failed to connect to bus: No medium found"):
        unit.status()
    monkeypatch.setenv("FAKEBIN_FORCE", "enable:1:Failed to enable unit: Access denied")
    with pytest.raises(AutostartError, match="Access denied"):
        unit.enable()
    monkeypatch.delenv("FAKEBIN_FORCE")
    with pytest.raises(AutostartError, match="not enabled"):
        unit.restart()


def test_missing_systemctl_says_systemd_is_needed(home, config, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing) as caught:
        autostart_manager(config, platform="linux").status()
    assert str(caught.value) == "systemctl not found: auto-start on Linux needs systemd"


def test_unsupported_platform() -> None:
    with pytest.raises(ToolMissing, match="macOS .* and Linux"):
        autostart_manager(Config(home=Path("/tmp")), platform="win32")


# --- the async API of the Settings page ---------------------------------------------------------


async def test_async_api_turns_problems_into_messages(fake, config, monkeypatch, tmp_path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("drives the fake systemctl")
    outcome = await enable_autostart(config)
    assert outcome.error is None and outcome.enabled
    assert (await autostart_status(config)).enabled
    assert not (await disable_autostart(config)).enabled
    monkeypatch.setenv("PATH", str(tmp_path))
    outcome = await autostart_status(config)
    assert outcome.status is None
    assert outcome.error == "systemctl not found: auto-start on Linux needs systemd"


def test_started_by_autostart_recognises_the_launch_agent() -> None:
    assert started_by_autostart({"XPC_SERVICE_NAME": "io.mlxui.app"})
    assert not started_by_autostart({"XPC_SERVICE_NAME": "com.apple.Terminal"})


# --- the command line ---------------------------------------------------------------------------


def mlxui(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlxui", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_cli_autostart(fake, home, tmp_path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("drives the fake systemctl")
    env = {**os.environ, "MLXUI_HOME": str(tmp_path / "data")}
    status = mlxui("autostart", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {
        "manager": "systemd",
        "path": str(home / ".config" / "systemd" / "user" / "mlxui.service"),
        "installed": False,
        "enabled": False,
        "running": False,
        "detail": "",
    }
    enabled = mlxui("autostart", "enable", "--port", "8802", "--json", env=env)
    assert enabled.returncode == 0, enabled.stderr
    assert json.loads(enabled.stdout)["enabled"] is True
    assert "--port 8802" in (home / ".config" / "systemd" / "user" / "mlxui.service").read_text()

    human = mlxui("autostart", "status", env=env)
    assert human.stdout.startswith("Auto-start at login: on (systemd user unit mlxui.service, running now)")
    disabled = mlxui("autostart", "disable", env=env)
    assert disabled.returncode == 0
    assert disabled.stdout.startswith("Auto-start at login: off")

    failing = mlxui("autostart", "status", env={**env, "FAKEBIN_FORCE": "show:1:Failed to connect to bus"})
    assert failing.returncode == 1
    assert failing.stderr.strip().splitlines() == [
        "systemd could not read the state of mlxui.service: Failed to connect to bus "
        "(no systemd user session is running for this login)"
    ]
    missing = mlxui("autostart", "enable", env={**env, "PATH": str(tmp_path)})
    assert missing.returncode == 2
    assert missing.stderr.strip() == "systemctl not found: auto-start on Linux needs systemd"
    assert not (home / ".config" / "systemd" / "user" / "mlxui.service").exists()
