"""`mlxui models pull` while the app runs: the app downloads (its Downloads tile shows it, it goes
on if the terminal is closed) and the CLI follows the progress; `--direct` downloads in the CLI."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.harness.app_process import start_app
from tests.harness.downloads import weight_gets
from tests.harness.fakehub import FakeHub
from tests.harness.fixtures_hub import HubEnv
from tests.test_cli_models import WEIGHTS, big_model, cli_env, serve  # noqa: F401 - big_model is a fixture


def pull(hf_env: HubEnv, home: Path, port: int, *args: str) -> subprocess.Popen:
    env = cli_env(hf_env, home) | {"MLXUI_PORT": str(port)}
    return subprocess.Popen([sys.executable, "-m", "mlxui", "models", "pull", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip


def download_row(app, repo_id: str) -> dict | None:
    rows = httpx.get(f"{app.url}/api/downloads", timeout=5).json()
    return next((r for r in rows if r["repo_id"] == repo_id), None)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_hands_the_download_to_the_running_app(hf_env: HubEnv, big_model: Path, tmp_path: Path) -> None:  # noqa: F811
    hub: FakeHub = hf_env.hub
    env = cli_env(hf_env, tmp_path / "home")
    app = start_app(tmp_path / "home", env=env)
    try:
        # followed to the end: progress lines, then the app has it
        repo_id = serve(hub, big_model)
        hub.throttle_bps = 3_000_000
        cli = pull(hf_env, tmp_path / "home", app.port, repo_id)
        stdout, stderr = cli.communicate(timeout=60)
        assert cli.returncode == 0, stderr
        assert f"{repo_id}: " in stdout and "%" in stdout, "progress while it downloads"
        assert stdout.strip().endswith(f"Downloaded {repo_id} (through mlxui at {app.url})")
        assert download_row(app, repo_id)["state"] == "done", "the Models page's Downloads tile knows it"
        assert sum(g.bytes_sent for g in weight_gets(hub, repo_id)) == WEIGHTS, "the weights fetched once"

        # Ctrl+C stops following, not downloading
        second = serve(hub, big_model)
        cli = pull(hf_env, tmp_path / "home", app.port, second)
        deadline = time.monotonic() + 30
        while not ((row := download_row(app, second)) and row["bytes_done"] > 1_000_000):
            assert time.monotonic() < deadline and cli.poll() is None, "the download never got going"
            time.sleep(0.05)
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=20)
        assert cli.returncode == 130 and "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == (
            f"Stopped following; mlxui goes on downloading {second} (pause or cancel it on the Models page)."
        )
        hub.throttle_bps = None
        deadline = time.monotonic() + 30
        while download_row(app, second)["state"] != "done":
            assert time.monotonic() < deadline, download_row(app, second)
            time.sleep(0.1)

        # a bad id is refused by the app with its own sentence; --direct bypasses the app
        refused = pull(hf_env, tmp_path / "home", app.port, "org/na me")
        _, stderr = refused.communicate(timeout=30)
        assert refused.returncode == 2 and "is not a model id" in stderr
        third = serve(hub, big_model)
        direct = pull(hf_env, tmp_path / "home", app.port, third, "--direct")
        stdout, stderr = direct.communicate(timeout=60)
        assert direct.returncode == 0, stderr
        assert f"Downloaded {third} to " in stdout and download_row(app, third) is None
    finally:
        app.stop()
