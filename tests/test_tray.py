"""The tray: its menu for every app/server state (pure, no display), its actions against the real
app process, starting the app from the tray, and pystray itself under Xvfb (docks, builds the
menu, quits from the menu or on SIGTERM, leaves nothing running)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlxui.app_client import AppApiError, AppClient
from mlxui.config import Config
from mlxui.system.tray import TrayApp, TrayController
from mlxui.system.tray_menu import Action, ActionKind, MenuEntry, build_menu, tray_title
from tests.harness import procguard
from tests.harness.app_process import AppProcess, app_env, free_port, running_app
from tests.harness.fixtures_models import HubCache
from tests.harness.xvfb import XDisplay, fake_systray, xvfb

ROOT = Path(__file__).resolve().parent.parent


def labels(entries: tuple[MenuEntry, ...]) -> list[str]:
    return ["---" if entry.separator else entry.label for entry in entries]


def entry(entries: tuple[MenuEntry, ...], label: str) -> MenuEntry:
    return next(e for e in entries if e.label == label)


def server(name: str, state: str, **more: object) -> dict:
    return {"name": name, "state": state, "model": f"mlx-community/{name}-4bit", **more}


# --- the menu model ------------------------------------------------------------------------------


def test_menu_when_the_app_is_not_running() -> None:
    menu = build_menu(None)
    assert labels(menu) == ["mlxui is not running", "Start mlxui", "---", "Quit tray"]
    start = entry(menu, "Start mlxui")
    assert start.enabled and start.default and start.action == Action(ActionKind.START_APP)
    assert not entry(menu, "mlxui is not running").enabled
    assert labels(build_menu(None, app_starting=True)) == ["Starting mlxui…", "---", "Quit tray"]


def test_menu_without_servers() -> None:
    menu = build_menu({"app": "mlxui", "ready": True, "servers": []})
    assert labels(menu) == ["Open mlxui", "---", "No servers yet", "---", "Stop all servers", "Quit tray"]
    assert entry(menu, "Open mlxui").default
    assert not entry(menu, "Stop all servers").enabled
    assert "mlxui is starting…" in labels(build_menu({"ready": False, "servers": []}))


@pytest.mark.parametrize(
    ("state", "shown", "can_start", "can_stop"),
    [
        ("stopped", "stopped", True, False),
        ("starting", "starting…", False, True),
        ("loading", "loading…", False, True),
        ("ready", "ready", False, True),
        ("stopping", "stopping…", False, False),
        ("failed", "failed", True, False),
        ("crashed", "crashed", True, False),
    ],
)
def test_server_entry_per_state(state: str, shown: str, can_start: bool, can_stop: bool) -> None:
    menu = build_menu({"servers": [server("qwen", state)]})
    item = entry(menu, f"qwen — {shown}")
    sub = {child.label: child for child in item.children}
    assert "mlx-community/qwen-4bit" in sub and not sub["mlx-community/qwen-4bit"].enabled
    assert (sub["Start"].enabled, sub["Stop"].enabled) == (can_start, can_stop)
    assert sub["Start"].action == Action(ActionKind.START_SERVER, "qwen")
    assert sub["Stop"].action == Action(ActionKind.STOP_SERVER, "qwen")
    assert entry(menu, "Stop all servers").enabled == can_stop


def test_failed_server_and_notice_are_shown() -> None:
    menu = build_menu(
        {"servers": [server("big", "failed", error="exit code 1: " + "out of memory " * 10)]},
        notice="could not stop big: busy (HTTP 409)",
    )
    assert menu[0].label == "⚠ could not stop big: busy (HTTP 409)" and not menu[0].enabled
    errors = [c.label for c in entry(menu, "big — failed").children if c.label.startswith("⚠")]
    assert (
        len(errors) == 1 and errors[0].startswith("⚠ exit code 1: out of memory") and errors[0].endswith("…")
    )


def test_title() -> None:
    assert tray_title(None) == "mlxui is not running"
    assert (
        tray_title({"servers": [server("a", "ready"), server("b", "stopped")]})
        == "mlxui: 1 of 2 servers ready"
    )


# --- actions against the real app ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real_app(hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    home = tmp_path_factory.mktemp("tray-app")
    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir), "HF_ENDPOINT": "http://127.0.0.1:9"}
    with running_app(home, env=env) as app:
        procguard.keep(app.pid)  # model servers it starts come and go within the tests
        try:
            yield app
        finally:
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
            procguard.release(app.pid)


def controller_for(app: AppProcess, **kwargs: object) -> TrayController:
    return TrayController(Config(home=app.home, port=app.port, hf_cache=app.home / "hf"), **kwargs)


def test_refresh_reads_the_real_status(real_app: AppProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):  # the app is local: no proxy
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    tray = controller_for(real_app)
    tray.refresh()
    assert tray.status is not None and tray.status["url"] == real_app.url
    menu = tray.menu()
    assert menu[0].label == "Open mlxui" and menu[0].default
    assert labels(menu)[-2:] == ["Stop all servers", "Quit tray"]


class RecordingClient(AppClient):
    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, path: str, **kwargs: object) -> object:
        self.calls.append((method, path))
        return super().call(method, path, **kwargs)


def test_actions_call_the_apps_api(real_app: AppProcess) -> None:
    opened: list[str] = []
    client = RecordingClient(real_app.url)
    calls = client.calls
    tray = controller_for(real_app, client=client, open_url=lambda url: opened.append(url) or True)
    assert tray.perform(Action(ActionKind.OPEN)) is None
    assert opened == [real_app.url]

    problem = tray.perform(Action(ActionKind.START_SERVER, "nosuchprofile"))
    assert calls[-1] == ("POST", "/api/servers/nosuchprofile/start?wait=false")
    assert problem is not None and problem.startswith("could not start nosuchprofile: ")
    assert "nosuchprofile" in problem.partition(": ")[2] and problem.endswith("(HTTP 404)")
    tray.refresh()
    assert tray.menu()[0].label.startswith("⚠ could not start nosuchprofile")

    assert tray.perform(Action(ActionKind.STOP_ALL)) is None
    assert calls[-1] == ("POST", "/api/servers/stop-all")
    tray.perform(Action(ActionKind.STOP_SERVER, "a b/c"))
    assert calls[-1] == ("POST", "/api/servers/a%20b%2Fc/stop")


@pytest.mark.slow
def test_start_and_stop_a_real_server_from_the_menu(real_app: AppProcess) -> None:
    with httpx.Client(base_url=real_app.url, timeout=30) as api:
        created = api.post("/api/profiles", json={"name": "tray-plain", "model": "mlxui-test/scripted-plain"})
        assert created.status_code == 201, created.text
    tray = controller_for(real_app)
    try:
        tray.refresh()
        item = entry(tray.menu(), "tray-plain — stopped")
        start = next(child for child in item.children if child.label == "Start")
        assert start.enabled
        assert tray.perform(start.action) is None
        wait_for_state(tray, "tray-plain", "ready")
        menu = tray.menu()
        stop = next(child for child in entry(menu, "tray-plain — ready").children if child.label == "Stop")
        assert stop.enabled and entry(menu, "Stop all servers").enabled
        assert tray.perform(entry(menu, "Stop all servers").action) is None
        wait_for_state(tray, "tray-plain", "stopped")
        assert not entry(tray.menu(), "Stop all servers").enabled
    finally:
        httpx.post(f"{real_app.url}/api/servers/stop-all", timeout=60)
        httpx.delete(f"{real_app.url}/api/profiles/tray-plain", timeout=30)


def wait_for_state(tray: TrayController, name: str, state: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tray.refresh()
        servers = {s["name"]: s for s in (tray.status or {}).get("servers", [])}
        if servers.get(name, {}).get("state") == state:
            return
        if servers.get(name, {}).get("state") == "failed":
            pytest.fail(f"{name} failed: {servers[name].get('error')}")
        time.sleep(0.3)
    pytest.fail(f"{name} did not become {state} within {timeout} s: {tray.status}")


def test_open_without_a_browser_says_where_to_go(real_app: AppProcess) -> None:
    tray = controller_for(real_app, open_url=lambda url: False)
    assert tray.perform(Action(ActionKind.OPEN)) == f"no browser could be opened; visit {real_app.url}"


def test_app_not_running(tmp_path: Path) -> None:
    tray = TrayController(Config(home=tmp_path, port=free_port(), hf_cache=tmp_path))
    tray.refresh()
    assert tray.status is None
    assert labels(tray.menu())[:2] == ["mlxui is not running", "Start mlxui"]
    assert tray.perform(Action(ActionKind.STOP_ALL)) == f"mlxui is not running at {tray.base_url}"


def test_start_mlxui_from_the_tray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for name in [n for n in os.environ if n.startswith(("PYTEST_", "NICEGUI_"))]:
        monkeypatch.delenv(name)  # NiceGUI would think the spawned app runs inside a test
    config = Config(home=tmp_path / "home", port=free_port(), hf_cache=tmp_path / "hf")
    tray = TrayController(config)
    assert tray.perform(Action(ActionKind.START_APP)) is None
    process = tray.spawned
    assert process is not None
    try:
        assert labels(tray.menu())[0] == "Starting mlxui…"
        deadline = time.monotonic() + 60
        while tray.status is None and time.monotonic() < deadline:
            time.sleep(0.3)
            tray.refresh()
            assert tray.spawned is not None, (config.logs_dir / "started-by-tray.log").read_text()
        assert tray.status is not None and not tray.app_starting
        assert tray.menu()[0].label == "Open mlxui"
        assert os.getsid(process.pid) == process.pid  # detached: survives the tray
    finally:
        process.terminate()
        process.wait(15)


class Unavailable(AppClient):
    """Something answers 503 at the app's address: the tray keeps waiting for the app it started."""

    def call(self, method: str, path: str, **kwargs: object) -> object:
        raise AppApiError("unavailable", status=503, kind="http")


def test_app_that_exits_at_once_is_reported(tmp_path: Path) -> None:
    config = Config(home=tmp_path / "home", port=0, hf_cache=tmp_path / "hf")  # `mlxui run` refuses port 0
    tray = TrayController(config, client=Unavailable(config.base_url))
    tray.perform(Action(ActionKind.START_APP))
    deadline = time.monotonic() + 30
    while tray.app_starting and time.monotonic() < deadline:
        time.sleep(0.2)
        tray.refresh()
    assert tray.spawned is None  # reaped
    assert tray.notice == f"mlxui exited with code 2; see {config.logs_dir / 'started-by-tray.log'}"


# --- pystray under Xvfb --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def display() -> Iterator[XDisplay]:
    if importlib.util.find_spec("pystray") is None:  # not imported: it connects to X at import
        pytest.skip("pystray is not installed: pip install 'mlxui[tray]'")
    try:
        with xvfb("800x600x24") as x:
            yield x
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_tray_icon_docks_builds_its_menu_and_quits(
    display: XDisplay, real_app: AppProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", display.name)
    monkeypatch.setenv("PYSTRAY_BACKEND", "xorg")
    seen: dict[str, object] = {}
    opened = threading.Event()

    def after_first_menu(tray: TrayApp) -> None:
        seen["labels"] = [item.text for item in tray.icon.menu.items]
        seen["title"] = tray.icon.title
        tray.icon()  # a left click on the icon: the default entry, "Open mlxui"
        seen["opened"] = opened.wait(10)
        quit_item = next(item for item in tray.icon.menu.items if item.text == "Quit tray")
        quit_item(tray.icon)  # what a click on "Quit tray" does

    with fake_systray(display.name) as systray:
        controller = controller_for(real_app, open_url=lambda url: opened.set() or True)
        app = TrayApp(controller, interval=0.5)
        watchdog = threading.Timer(20, app.quit)  # the test must not hang if Quit did nothing
        watchdog.start()
        started = time.monotonic()
        try:
            app.run(after_first_menu)
        finally:
            watchdog.cancel()
        assert time.monotonic() - started < 15, "Quit did not end the tray"
        assert systray.docked, "the icon never asked the system tray to dock it"
    assert seen["labels"] == [
        "Open mlxui",
        "- - - -",
        "No servers yet",
        "- - - -",
        "Stop all servers",
        "Quit tray",
    ]
    assert seen["title"] == "mlxui: no servers"
    assert seen["opened"], "a click on the icon did not open mlxui"
    leftover = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    assert leftover == []


def test_mlxui_tray_command_runs_and_quits_on_sigterm(display: XDisplay, tmp_path: Path) -> None:
    env = app_env(tmp_path / "home", {"DISPLAY": display.name, "PYSTRAY_BACKEND": "xorg"})
    port = free_port()  # nothing listens: the tray offers to start mlxui
    with fake_systray(display.name) as systray:
        tray = subprocess.Popen(
            [sys.executable, "-m", "mlxui", "tray", "--port", str(port), "--interval", "0.5"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert systray.wait_docked(30), "the tray icon did not appear"
            time.sleep(0.5)  # a poll or two
            tray.send_signal(signal.SIGTERM)
            out, err = tray.communicate(timeout=15)
        finally:
            if tray.poll() is None:
                tray.kill()
                tray.wait(5)
    assert tray.returncode == 0, err
    assert err.strip().splitlines()[-1] == "mlxui tray: quit"
    with pytest.raises(httpx.TransportError):  # it did not start the app on its own
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_mlxui_tray_without_a_display(tmp_path: Path) -> None:
    env = {k: v for k, v in app_env(tmp_path).items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [sys.executable, "-m", "mlxui", "tray"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "the tray needs a graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    ]
