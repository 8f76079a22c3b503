"""The download controls in every face: the bandwidth limit and connections as settings (API, CLI,
Settings page), a limit for one pull (`--limit`, `POST /api/downloads`), and what a refused value says."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from nicegui.testing.user import User

from mlxui import db
from mlxui.hub.pull import Progress
from mlxui.state import DownloadState
from mlxui.ui.components.downloads_tile import describe
from tests.harness.app_process import start_app
from tests.harness.fixtures_hub import HubEnv
from tests.test_cli_models import big_model, cli_env, serve  # noqa: F401 - big_model is a fixture


def mlxui(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlxui", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def test_limits_and_connections_through_the_api_and_the_cli(
    hf_env: HubEnv,
    big_model: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    app = start_app(home, env=cli_env(hf_env, home))
    env = cli_env(hf_env, home) | {"MLXUI_PORT": str(app.port)}
    try:
        said = mlxui(env, "settings", "set", "bandwidth-limit", "3MB/s")
        assert said.returncode == 0, said.stderr
        assert said.stdout.strip() == "bandwidth-limit = 3 MB/s"
        settings = httpx.get(f"{app.url}/api/settings", timeout=10).json()
        assert (settings["bandwidth_limit"], settings["max_connections"]) == (3_000_000, 16)

        refused = httpx.put(
            f"{app.url}/api/settings", json={"max_connections": 99, "bandwidth_limit": "fast"}
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["fields"] == {
            "max_connections": "Must be between 1 and 32.",
            "bandwidth_limit": "'fast' is not a rate; write it like 50MB/s, 800KB/s or 0 for no limit.",
        }
        bad = httpx.post(f"{app.url}/api/downloads", json={"repo_id": "org/x", "limit": "soon"}, timeout=10)
        assert bad.status_code == 400 and "is not a rate" in bad.json()["error"]["message"]
        assert (
            mlxui(env, "settings", "unset", "bandwidth-limit").stdout.strip() == "bandwidth-limit = no limit"
        )

        # one pull with its own limit: the app's row says so, and it takes as long as the limit says
        repo_id = serve(hf_env.hub, big_model)
        began = time.monotonic()
        cli = subprocess.Popen([sys.executable, "-m", "mlxui", "models", "pull", repo_id, "--limit", "2MB/s"],
                               env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        rows: list[dict] = []
        while cli.poll() is None and time.monotonic() - began < 30:
            rows += [
                r for r in httpx.get(f"{app.url}/api/downloads", timeout=5).json() if r["repo_id"] == repo_id
            ]
            time.sleep(0.2)
        _, stderr = cli.communicate(timeout=30)
        assert cli.returncode == 0, stderr
        assert time.monotonic() - began >= 2.5  # 6 MB at 2 MB/s, less the first burst
        moving = [r for r in rows if r["state"] == "downloading"]
        assert moving and all(r["limit_bps"] == 2_000_000 for r in moving)
        assert max(r["connections"] for r in moving) >= 1

        for args, message in (
            (("--limit", "fast"), "'fast' is not a rate"),
            (("--connections", "0", "--direct"), "--connections must be between 1 and 32."),
            (("--connections", "4"), "--connections applies to --direct pulls"),
        ):
            wrong = mlxui(env, "models", "pull", repo_id, *args)
            assert wrong.returncode == 2 and message in wrong.stderr, wrong.stderr
    finally:
        app.stop()


async def test_the_settings_card_saves_the_limit_and_says_what_is_wrong(user: User, mlxui_home: Path) -> None:
    from nicegui import app as nicegui_app

    services = next(h.__self__ for h in nicegui_app._startup_handlers if hasattr(h, "__self__"))  # noqa: SLF001
    settings = services.downloads.settings
    await user.open("/settings")
    limit = user.find(marker="bandwidth-limit")
    limit.type("25MB/s").trigger("blur")
    await user.should_see("25 MB/s")
    assert settings.bandwidth_limit == 25_000_000 and settings.limiter.rate == 25_000_000
    assert await db.get_setting("downloads.bandwidth_limit") == 25_000_000
    limit.clear().type("quick").trigger("blur")
    await user.should_see("is not a rate")
    assert settings.bandwidth_limit == 25_000_000, "a refused value leaves the saved one in force"


def test_the_downloads_tile_names_speed_time_left_and_connections() -> None:
    st = DownloadState(
        repo_id="org/m", state="downloading", bytes_done=1_500_000_000, bytes_total=4_500_000_000
    )
    st.speed_bps, st.eta_s, st.connections, st.current_file = 35_200_000, 94, 8, "model.safetensors"
    st.limit_bps = 50_000_000
    line = describe(st)
    assert "/s" in line and "left" in line and "8 connections" in line and "limit 50 MB/s" in line
    st.state = "paused"
    assert "connections" not in describe(st)
    assert Progress("org/m").connections == 0
