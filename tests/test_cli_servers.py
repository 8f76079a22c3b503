"""`mlxui servers ...` as a user types it (a real process each time) against the real app."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tests.harness.app_process import AppProcess, app_env, free_port, module_app
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.harness.models import PLAIN_REPLY, UNLOADABLE_ERROR, build_unloadable

pytestmark = pytest.mark.slow

PLAIN = "mlxui-test/scripted-plain"
ACTIONS = ("list", "add", "start", "restart", "stop", "stop-all", "logs", "export", "import", "rm")


@pytest.fixture(scope="module")
def app(hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with module_app(tmp_path_factory.mktemp("cli-servers-home"), hub_cache.cache_dir) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_app(app: AppProcess) -> Iterator[None]:
    """Every test starts and ends with no servers running and no profiles."""
    yield
    with httpx.Client(base_url=app.url, timeout=60, trust_env=False) as api:
        assert api.post("/api/servers/stop-all").status_code == 200
        for profile in api.get("/api/profiles").json():
            assert api.delete(f"/api/profiles/{profile['name']}").status_code == 200


def mlxui(app: AppProcess, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlxui", "servers", *args],
        env=app_env(app.home, {"MLXUI_PORT": str(app.port)}),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def chat(port: int) -> str:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30, trust_env=False
    )
    return response.json()["choices"][0]["message"]["content"]


def test_not_running_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = free_port()
    for args in (["list", "--port", str(port)], ["add", "x", "--model", PLAIN, "--app-port", str(port)]):
        result = subprocess.run(
            [sys.executable, "-m", "mlxui", "servers", *args],
            env=app_env(tmp_path), capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 1
        assert (
            result.stderr == f"mlxui is not running at http://127.0.0.1:{port} (start it with `mlxui run`)\n"
        )


def test_every_action_has_help(app: AppProcess) -> None:
    listing = ok(mlxui(app, "--help"))
    for action in ACTIONS:
        assert re.search(rf"^\s+{action}\s+\S", listing, re.M), action
        assert ok(mlxui(app, action, "--help")).startswith(f"usage: mlxui servers {action}")


def test_add_list_start_logs_restart_stop_rm(app: AppProcess) -> None:
    bad = mlxui(app, "add", "bad name", "--model", PLAIN, "--port", "80")
    assert bad.returncode == 2
    assert bad.stderr == (
        "name: Use up to 64 letters, digits, dots, dashes or underscores (no spaces).\n"
        "port: Must be between 1024 and 65535.\n"
    )
    assert ok(mlxui(app, "list")) == (
        "No server profiles and no local model running. Start a downloaded model by name with\n"
        "`mlxui servers start REPO_ID`, or add a profile with `mlxui servers add NAME --model REPO_OR_PATH`.\n"
    )
    every = ok(mlxui(app, "list", "--all"))  # every downloaded model can run without a profile
    assert "mlxui-test/scripted-plain         stopped    auto        -  mlxui-test/scripted-plain\n" in every
    added = mlxui(
        app, "add", "plain", "--model", PLAIN, "--ttl", "600", "--temp", "0.2", "--max-tokens", "64"
    )
    assert ok(added) == (
        "Added plain: mlxui-test/scripted-plain (lm server, port auto).\n"
        "Start it with `mlxui servers start plain`.\n"
    )
    assert ok(mlxui(app, "list")) == (
        "NAME   STATE      PORT      PID  MODEL\nplain  stopped    auto        -  mlxui-test/scripted-plain\n"
    )

    started = mlxui(app, "start", "plain")
    match = re.fullmatch(r"plain is ready at http://127\.0\.0\.1:(\d+) \(pid (\d+)\)\.\n", ok(started))
    assert match, started.stdout
    port, pid = int(match[1]), int(match[2])
    assert re.fullmatch(r"plain:( \w+\.*)* ready\n", started.stderr), started.stderr  # progress, then ready
    assert alive(pid) and chat(port) == PLAIN_REPLY
    assert ok(mlxui(app, "list")) == (
        f"NAME   STATE      PORT      PID  MODEL\nplain  ready     {port:>5}  {pid:>7}  mlxui-test/scripted-plain\n"
    )
    as_json = ok(mlxui(app, "list", "--json"))
    assert '"idle_ttl": 600' in as_json and '"temperature": 0.2' in as_json and f'"pid": {pid}' in as_json

    tail = ok(mlxui(app, "logs", "plain", "-n", "3"))
    assert len(tail.splitlines()) == 3 and '"POST /v1/chat/completions HTTP/1.1" 200' in tail

    restarted = ok(mlxui(app, "restart", "plain", "--json"))
    new_pid = int(re.search(r'"pid": (\d+)', restarted)[1])
    assert new_pid != pid and not alive(pid) and alive(new_pid)

    unconfirmed = mlxui(app, "rm", "plain")
    assert unconfirmed.returncode == 2
    assert unconfirmed.stderr == "Refusing to delete the profile plain without confirmation: add --yes\n"
    assert alive(new_pid), "nothing happens without confirmation"
    # The same rule as the UI and the API: deleting the profile of a running server stops it.
    assert ok(mlxui(app, "rm", "plain", "--yes")) == "Stopped its server and deleted the profile plain.\n"
    assert not alive(new_pid)
    missing = mlxui(app, "start", "plain")
    assert (missing.returncode, missing.stderr) == (1, "There is no model or profile named 'plain'.\n")
    odd = mlxui(app, "stop", "../x")  # ".." is a path step: it could reach another route
    assert (odd.returncode, odd.stderr) == (2, "'../x' is not a profile or model name.\n")


def test_a_downloaded_model_starts_by_name_without_a_profile(app: AppProcess) -> None:
    started = mlxui(app, "start", "scripted-plain")  # its short name; the repo id works as well
    match = re.fullmatch(
        r"mlxui-test/scripted-plain is ready at http://127\.0\.0\.1:(\d+) \(pid (\d+)\)\.\n", ok(started)
    )
    assert match, started.stdout
    port, pid = int(match[1]), int(match[2])
    assert chat(port) == PLAIN_REPLY
    listed = ok(mlxui(app, "list"))  # a running local model is listed without --all
    assert f"mlxui-test/scripted-plain  ready     {port:>5}  {pid:>7}  mlxui-test/scripted-plain" in listed
    tail = ok(mlxui(app, "logs", "mlxui-test/scripted-plain", "-n", "50"))
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in tail
    assert ok(mlxui(app, "stop", "mlxui-test/scripted-plain")) == "mlxui-test/scripted-plain is stopped.\n"
    assert not alive(pid)
    assert ok(mlxui(app, "list")).startswith("No server profiles")


def test_logs_follow_prints_new_lines_and_ctrl_c_ends_it(app: AppProcess) -> None:
    ok(mlxui(app, "add", "tail", "--model", PLAIN))
    port = int(re.search(r":(\d+) ", ok(mlxui(app, "start", "tail")))[1])
    follower = subprocess.Popen(
        [sys.executable, "-m", "mlxui", "servers", "logs", "tail", "-n", "1", "-f"],
        env=app_env(app.home, {"MLXUI_PORT": str(app.port)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 15
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(lines) == 1, "the last line of the log did not arrive"
        chat(port)
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "POST /v1/chat/completions" in "".join(lines[1:])
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0
        assert "Traceback" not in follower.stderr.read()
        server_pid = next(
            s["pid"] for s in json.loads(ok(mlxui(app, "list", "--json"))) if s["name"] == "tail"
        )
        assert ok(mlxui(app, "stop", "tail")) == "tail is stopped.\n"
        assert not alive(server_pid)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(5)
        follower.stdout.close()
        follower.stderr.close()


def test_a_failed_start_prints_the_error_and_log_tail(
    app: AppProcess, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    bad = build_unloadable(tmp_path / "unloadable")
    ok(mlxui(app, "add", "broken", "--model", str(bad), "--json"))
    failed = mlxui(app, "start", "broken")
    assert failed.returncode == 1 and failed.stdout == ""
    progress, message = failed.stderr.split("\n", 1)
    assert progress.startswith("broken:") and progress.endswith(" failed")
    assert message.startswith("broken did not start: The server failed to load the model:")
    assert UNLOADABLE_ERROR in message.splitlines()[0], "the meaningful line comes first"
    assert "\nLast lines of " in message and "Traceback" in message
    assert "failed" in ok(mlxui(app, "list")).splitlines()[1]


def test_export_then_import_restores_the_profiles(app: AppProcess, tmp_path: Path) -> None:
    ok(mlxui(app, "add", "a", "--model", PLAIN, "--temp", "0.5", "--autostart"))
    ok(mlxui(app, "add", "b", "--model", PLAIN, "--port", str(free_port())))
    before = ok(mlxui(app, "list", "--json"))
    export = tmp_path / "profiles.yaml"
    assert ok(mlxui(app, "export", str(export))) == f"Exported 2 profiles to {export}.\n"
    saved = yaml.safe_load(export.read_text())["profiles"]
    assert [(p["name"], p["temperature"], p["autostart"]) for p in saved] == [
        ("a", 0.5, True),
        ("b", None, False),
    ]
    for name in ("a", "b"):
        ok(mlxui(app, "rm", name, "--yes"))

    assert ok(mlxui(app, "import", str(export))) == "Imported 2 profiles: a, b.\n"
    assert ok(mlxui(app, "list", "--json")) == before
    again = mlxui(app, "import", str(export))
    assert again.returncode == 2
    assert again.stderr == "profiles[0] (a).name: A profile named 'a' already exists.\n"
    assert ok(mlxui(app, "import", str(export), "--replace")) == "Imported 2 profiles: a, b.\n"
    unreadable = mlxui(app, "import", str(tmp_path / "missing.yaml"))
    assert unreadable.returncode == 1 and unreadable.stderr.startswith("Cannot read ")


def settings_cli(app: AppProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlxui", "settings", *args],
        env=app_env(app.home, {"MLXUI_PORT": str(app.port)}),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_settings_from_the_cli_apply_to_the_running_app(app: AppProcess) -> None:
    try:
        assert ok(settings_cli(app, "set", "default-idle-ttl", "900")) == "default-idle-ttl = 900\n"
        ok(mlxui(app, "add", "lazy", "--model", PLAIN))
        lazy = next(p for p in httpx.get(f"{app.url}/api/profiles").json() if p["name"] == "lazy")
        assert lazy["idle_ttl"] == 900, "the default idle stop applies to profiles the CLI adds"

        generated = ok(settings_cli(app, "set", "gateway-key"))
        key = re.fullmatch(
            r"Gateway key: (mlxui-\S+)\n\(copy it now: mlxui does not show it again\)\n", generated
        )
        assert key, generated
        bearer = {"Authorization": f"Bearer {key[1]}"}
        assert httpx.get(f"{app.url}/v1/models").status_code == 401
        assert httpx.get(f"{app.url}/v1/models", headers=bearer).status_code == 200
        listed = ok(settings_cli(app, "list"))
        rows = dict(line.split(maxsplit=1) for line in listed.splitlines())
        assert rows["gateway-key"] == "set (hidden)" and key[1] not in listed
        assert rows["max-running"] == "-" and rows["default-idle-ttl"] == "900"

        refused = settings_cli(app, "set", "max-running", "zero")
        assert (refused.returncode, refused.stderr) == (
            2,
            "max_running: Give a whole number or leave it empty.\n",
        )
        unknown = settings_cli(app, "set", "colour", "red")
        assert unknown.returncode == 2 and unknown.stderr.startswith(
            "colour: 'colour' is not a setting here."
        )

        assert ok(settings_cli(app, "unset", "gateway-key")) == "gateway-key = -\n"
        assert httpx.get(f"{app.url}/v1/models").status_code == 200
    finally:
        httpx.put(f"{app.url}/api/settings", json={"default_idle_ttl": None, "gateway_key": None})


def test_a_distributed_profile_whose_heads_do_not_split_is_refused(
    app: AppProcess, smollm2_model: Path
) -> None:
    """2 ranks of SmolLM2 (9 heads, 3 KV heads) are refused before anything starts, by the CLI
    and the API alike, with the counts that would work; 3 ranks are saved (docs/distributed.md)."""
    sentence = (
        f"{smollm2_model.name} has 9 attention heads and 3 KV heads: it splits over 1 or 3 ranks, not 2."
    )
    refused = mlxui(app, "add", "smol2", "--model", str(smollm2_model), "--ranks", "2")
    assert refused.returncode != 0 and sentence in refused.stderr, refused.stderr
    with httpx.Client(base_url=app.url, timeout=60, trust_env=False) as api:
        answer = api.post("/api/profiles", json={"name": "smol2", "model": str(smollm2_model), "ranks": 2})
        assert answer.status_code == 422 and answer.json()["error"]["fields"] == {"ranks": sentence}
        assert api.get("/api/profiles").json() == []
    saved = json.loads(
        ok(mlxui(app, "add", "smol3", "--model", str(smollm2_model), "--ranks", "3", "--json"))
    )
    assert (saved["ranks"], saved["hosts"], saved["backend"], saved["parallel"]) == (3, None, None, None)
