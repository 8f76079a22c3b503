"""The `mlxui` command as a user types it (a real process each time)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from mlxui import __version__
from tests.harness.app_process import app_env, free_port


def mlxui(*args: str, home, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlxui", *args],
        env=app_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version(tmp_path) -> None:
    result = mlxui("--version", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"mlxui {__version__}"


def test_help_lists_commands(tmp_path) -> None:
    result = mlxui("--help", home=tmp_path)
    assert result.returncode == 0
    for command in ("run", "status", "open"):
        assert command in result.stdout


def test_status_when_not_running(tmp_path) -> None:
    port = free_port()
    result = mlxui("status", "--port", str(port), home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("mlxui is not running")
    assert "Traceback" not in result.stderr


def test_status_of_running_app(app_process) -> None:
    result = mlxui("status", "--port", str(app_process.port), home=app_process.home)
    assert result.returncode == 0, result.stderr
    assert f"mlxui {__version__} at {app_process.url}" in result.stdout
    assert "Servers: none" in result.stdout
    as_json = json.loads(
        mlxui("status", "--json", "--port", str(app_process.port), home=app_process.home).stdout
    )
    assert as_json["version"] == __version__
    assert as_json["servers"] == [] and as_json["downloads"] == []


def test_port_in_use_is_one_clear_line(tmp_path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = mlxui("run", "--no-browser", "--port", str(port), home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"port {port} is in use; choose another with --port"


def test_bad_port_value(tmp_path) -> None:
    result = mlxui("run", "--no-browser", "--port", "70000", home=tmp_path)
    assert result.returncode == 2
    assert "port must be between 1 and 65535" in result.stderr
    env_result = subprocess.run(
        [sys.executable, "-m", "mlxui", "status"],
        capture_output=True,
        text=True,
        env={**app_env(tmp_path), "MLXUI_PORT": "abc"},
        timeout=30,
    )
    assert env_result.returncode == 2
    assert "MLXUI_PORT must be a number" in env_result.stderr


def test_binding_beyond_loopback_warns(tmp_path) -> None:
    # 127.0.0.2 is still this machine, but it is not one of the loopback names mlxui trusts by default.
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlxui", "run", "--no-browser", "--host", "127.0.0.2", "--port", str(port)],
        env=app_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        first_line = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(15)
    assert "WARNING: binding to 127.0.0.2" in first_line


def run_into_closed_pipe(args: list[str], env: dict[str, str], *, buffered: bool = True) -> tuple[int, str]:
    """Run `mlxui ARGS` with its output going into a pipe nobody reads any more, as in
    `mlxui ... | head -1` once head has its line; the exit code and standard error. Buffered, as
    a user's shell runs it: the broken pipe then shows when the buffer is flushed, up to the
    interpreter's exit; unbuffered (PYTHONUNBUFFERED), at the first write."""
    env = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"} | (
        {} if buffered else {"PYTHONUNBUFFERED": "1"}
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "mlxui", *args], env=env, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    child.stdout.close()  # before the child has written anything: its first write meets EPIPE
    _, stderr = child.communicate(timeout=60)
    return child.returncode, stderr


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["servers", "logs", "--help"], ["chats", "list", "--json"]],
    ids=" ".join,
)
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_a_closed_output_pipe_ends_quietly(tmp_path, args: list[str], buffered: bool) -> None:
    code, stderr = run_into_closed_pipe(args, app_env(tmp_path), buffered=buffered)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert stderr == "" and code in (0, 1)  # argparse's --help and --version succeed regardless
