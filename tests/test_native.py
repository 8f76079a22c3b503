"""`mlxui run --native`: a real pywebview window (Qt WebEngine on Linux) under Xvfb shows the UI,
titled "mlxui" with the icon from assets/; without pywebview or its GUI toolkit, one clear line."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import pytest

from mlxui.system.native import native_problem
from tests.harness import procguard
from tests.harness.app_process import app_env, free_port
from tests.harness.xvfb import close_window, distinct_colours, find_window, screenshot, xvfb

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
INSTALL_LINE = "pip install 'mlxui[native]'"


@pytest.fixture(scope="module")
def native_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app in native mode on a private X display, once for the module (Qt starts slowly)."""
    problem = native_problem()
    if problem is not None:
        pytest.skip(problem)
    home = tmp_path_factory.mktemp("native")
    with ExitStack() as stack:
        try:
            display = stack.enter_context(xvfb("1400x1000x24"))
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
        env = app_env(
            home,
            {
                "DISPLAY": display.name,
                "PYWEBVIEW_GUI": "qt",
                "QT_QPA_PLATFORM": "xcb",
                "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing leaves this machine
                "HF_HUB_CACHE": str(home / "hf"),
            },
        )
        if os.geteuid() == 0:
            env["QTWEBENGINE_DISABLE_SANDBOX"] = "1"  # Chromium refuses to run as root with its sandbox
        port = free_port()
        log_path = home / "native.log"
        with log_path.open("wb") as log:
            app = subprocess.Popen(
                [sys.executable, "-m", "mlxui", "run", "--native", "--port", str(port)],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procguard.keep(app.pid)  # the window process and QtWebEngine helpers appear later
        stack.callback(procguard.release, app.pid)
        stack.callback(stop_tree, app)
        yield {"display": display.name, "port": port, "process": app, "log": log_path}


def stop_tree(process: subprocess.Popen) -> None:
    """SIGTERM the app's session (app, window process, QtWebEngine helpers) and check all are gone."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=15)
    for proc in alive:
        proc.kill()
    process.wait(5)
    assert not alive, f"still running 15 s after SIGTERM: {[p.pid for p in alive]}"


def wait_for_ui(window: dict, timeout: float = 60.0) -> tuple[dict, object]:
    """Wait until /healthz answers and a window named "mlxui" shows rendered content."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{window['port']}/healthz"
    previous = None
    while time.monotonic() < deadline:
        if window["process"].poll() is not None:
            pytest.fail(
                f"mlxui --native exited with {window['process'].returncode}:\n{window['log'].read_text()}"
            )
        try:
            healthy = httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            healthy = False
        found = find_window(window["display"], "mlxui") if healthy else None
        if found:
            shot = screenshot(window["display"]).crop(found["box"])
            # Text and icons drawn (not a blank page), and nothing changing any more (images loaded).
            if distinct_colours(shot) > 200 and shot == previous:
                return found, shot
            previous = shot
        time.sleep(0.7)
    pytest.fail(f"no rendered mlxui window within {timeout} s:\n{window['log'].read_text()[-3000:]}")


def test_native_window_shows_the_ui(native_window: dict) -> None:
    found, shot = wait_for_ui(native_window)
    width, height = shot.size
    assert (width, height) == (1280, 860)  # the window size mlxui asks for
    ARTIFACTS.mkdir(exist_ok=True)
    shot.save(ARTIFACTS / "native-window.png")  # for the README


def test_native_window_has_the_mlxui_icon(native_window: dict) -> None:
    found, _ = wait_for_ui(native_window)
    assert found["has_icon"], "the native window has no icon (_NET_WM_ICON): is native_start_args() used?"


def test_closing_the_window_quits_mlxui(native_window: dict) -> None:
    """Closing the window ends the app the same way quitting does (its shutdown decides what
    happens to running model servers), and leaves no window or web engine process behind."""
    found, _ = wait_for_ui(native_window)
    app = native_window["process"]
    tree = [psutil.Process(app.pid), *psutil.Process(app.pid).children(recursive=True)]
    close_window(native_window["display"], found["id"])
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, f"still running 30 s after the window closed: {[p.cmdline()[:2] for p in alive]}"
    assert app.wait(5) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{native_window['port']}/healthz", timeout=2)


def run_native_with_shim(tmp_path: Path, files: dict[str, str]) -> tuple[int, str, str]:
    """`mlxui run --native` with modules on PYTHONPATH that hide installed packages. It must exit
    at once; if it starts serving instead, its whole session is stopped and the test fails."""
    for name, text in files.items():
        (tmp_path / "shim" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "shim" / name).write_text(text)
    env = app_env(tmp_path / "home", {"PYTHONPATH": str(tmp_path / "shim"), "DISPLAY": ":9999"})
    process = subprocess.Popen(
        [sys.executable, "-m", "mlxui", "run", "--native", "--port", str(free_port())],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        stop_tree(process)
        pytest.fail("`mlxui run --native` started serving instead of saying what to install")
    return process.returncode, out, err


def test_without_pywebview_one_line_says_how_to_install(tmp_path: Path) -> None:
    code, out, err = run_native_with_shim(
        tmp_path, {"webview.py": "raise ImportError('No module named webview')\n"}
    )
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [f"the native window needs pywebview: {INSTALL_LINE}"]


def test_without_a_gui_toolkit_one_line_says_how_to_install(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("pywebview brings its own toolkit bindings on macOS and Windows")
    if importlib.util.find_spec("gi") is not None:
        pytest.skip("PyGObject is installed here: pywebview could use GTK")
    # Empty packages hide the installed Qt bindings' QtWebEngineWidgets.
    hidden = {f"{name}/__init__.py": "" for name in ("PySide6", "PyQt6", "PyQt5")}
    code, out, err = run_native_with_shim(tmp_path, hidden)
    assert code == 2
    assert err.strip().splitlines() == [
        f"the native window needs a GUI toolkit for pywebview (Qt WebEngine or GTK): {INSTALL_LINE}"
    ]
