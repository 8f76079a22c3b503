"""`mlxui tray`: a menu-bar / system-tray icon for the running app, in a process of its own.

It polls the app's `/api/status` every few seconds (waiting on an Event, so it sleeps in between
and wakes at once after a click), rebuilds the menu from `tray_menu.build_menu`, and carries out
the chosen action through the app's HTTP API. When nothing answers it offers to start the app.

`TrayController` holds the state and the actions and needs no display; `TrayApp` is the thin
pystray shell around it. pystray picks its backend at import: AppKit on macOS, AppIndicator/GTK
or plain X (xorg: no menu, a left click runs the default entry) on Linux.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from mlxui.app_client import AppApiError, AppClient
from mlxui.config import Config
from mlxui.system.autostart_common import launch_spec
from mlxui.system.native import assets_dir
from mlxui.system.tray_menu import Action, ActionKind, MenuEntry, build_menu, tray_title

POLL_INTERVAL_S = 3.0
STATUS_TIMEOUT_S = 2.0  # short: Quit waits for a poll in flight
ACTION_TIMEOUT_S = 15.0
APP_START_TIMEOUT_S = 90.0
STOP_GRACE_S = 1.0  # how long Quit waits for the backend's loop before nudging it
NOTICE_SHOWN_S = 60.0  # a failed action stays in the menu this long (or until the next action)


class TrayUnavailable(Exception):
    """The tray cannot run here (packages or a graphical session missing); one line for the user."""


def spawn_app(config: Config) -> subprocess.Popen[bytes]:
    """Start `mlxui run --no-browser` detached from the tray (its own session, output to a log),
    with the same command line and environment auto-start would use."""
    spec = launch_spec(config)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    with (config.logs_dir / "started-by-tray.log").open("ab") as log:
        return subprocess.Popen(
            list(spec.argv),
            env={**os.environ, **spec.env},
            cwd=spec.working_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class TrayController:
    """The tray's state (last status, last problem, a spawned app) and its actions."""

    def __init__(
        self,
        config: Config,
        *,
        client: AppClient | None = None,
        open_url: Callable[[str], bool] = webbrowser.open,
        spawn: Callable[[Config], subprocess.Popen[bytes]] = spawn_app,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.client = client or AppClient(config.base_url, timeout=ACTION_TIMEOUT_S)
        self.open_url = open_url
        self.spawn = spawn
        self.clock = clock
        self.status: dict[str, Any] | None = None
        self.poll_problem: str | None = None  # from the last refresh
        self.notice: str | None = None  # from the last action
        self._notice_at = 0.0
        self.spawned: subprocess.Popen[bytes] | None = None
        self._waiting_since: float | None = None  # set while a spawned app has not answered yet

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def app_starting(self) -> bool:
        return self._waiting_since is not None

    def menu(self) -> tuple[MenuEntry, ...]:
        if self.notice and self.clock() - self._notice_at > NOTICE_SHOWN_S:
            self.notice = None
        return build_menu(
            self.status, notice=self.notice or self.poll_problem, app_starting=self.app_starting
        )

    def title(self) -> str:
        return tray_title(self.status)

    def refresh(self) -> None:
        """Fetch /api/status (None when the app does not answer) and follow a spawned app."""
        try:
            self.status, self.poll_problem = self.client.status(timeout=STATUS_TIMEOUT_S), None
        except AppApiError as exc:
            self.status = None
            self.poll_problem = (
                None if exc.unreachable else f"{self.base_url} answers, but not as mlxui (HTTP {exc.status})"
            )
        self._follow_spawned()

    def perform(self, action: Action) -> str | None:
        """Carry out a menu action; returns (and keeps as `notice`) the problem, if any."""
        handlers = {
            ActionKind.OPEN: self._open,
            ActionKind.START_APP: self._start_app,
            # wait=false: the app answers once the start is under way; the next poll shows progress.
            ActionKind.START_SERVER: lambda: self._post(
                f"/api/servers/{_seg(action)}/start?wait=false", "start", action
            ),
            ActionKind.STOP_SERVER: lambda: self._post(f"/api/servers/{_seg(action)}/stop", "stop", action),
            ActionKind.STOP_ALL: lambda: self._post("/api/servers/stop-all", "stop", action),
            ActionKind.QUIT: lambda: None,  # the tray shell quits; nothing to ask the app
        }
        problem = handlers[action.kind]()
        self._set_notice(problem)
        return problem

    def _set_notice(self, text: str | None) -> None:
        self.notice, self._notice_at = text, self.clock()

    def _open(self) -> str | None:
        if self.open_url(self.base_url):
            return None
        return f"no browser could be opened; visit {self.base_url}"

    def _start_app(self) -> str | None:
        if self.app_starting:
            return None
        try:
            self.spawned = self.spawn(self.config)
        except OSError as exc:
            return f"could not start mlxui: {exc}"
        self._waiting_since = self.clock()
        return None

    def _post(self, path: str, verb: str, action: Action) -> str | None:
        try:
            self.client.call("POST", path)
        except AppApiError as exc:
            if exc.unreachable:
                return f"mlxui is not running at {self.base_url}"
            return f"could not {verb} {action.server or 'all servers'}: {exc.message} (HTTP {exc.status})"
        return None

    def _follow_spawned(self) -> None:
        """Stop waiting once the spawned app answers, exits or takes too long; reap it when it exits
        (it is our child until then, even though it runs in its own session)."""
        process = self.spawned
        if process is None:
            return
        code = process.poll()
        if code is not None:
            self.spawned = None
        if self._waiting_since is None:
            return
        log = self.config.logs_dir / "started-by-tray.log"
        if self.status is not None:
            self._waiting_since = None
        elif code is not None:
            self._waiting_since = None
            self._set_notice(f"mlxui exited with code {code}; see {log}")
        elif self.clock() - self._waiting_since > APP_START_TIMEOUT_S:
            self._waiting_since = None
            self._set_notice(f"mlxui did not answer within {APP_START_TIMEOUT_S:.0f} s; see {log}")


def _seg(action: Action) -> str:
    return quote(action.server or "", safe="")


class TrayApp:
    """The pystray icon around a TrayController. `run()` blocks in the main thread until Quit."""

    def __init__(self, controller: TrayController, *, interval: float = POLL_INTERVAL_S) -> None:
        self.controller = controller
        self.interval = interval
        self.icon: Any = None
        self._pystray: Any = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._loop_ended = threading.Event()
        # Held while the menu is applied and while quitting starts, so no update reaches an icon
        # whose loop has ended (pystray's xorg backend would wait for it forever).
        self._icon_lock = threading.Lock()

    def run(self, setup_done: Callable[[TrayApp], None] | None = None) -> None:
        """Show the icon and poll until Quit. `setup_done` runs (in the poll thread) after the
        first menu is built."""
        self._pystray = load_pystray()
        from PIL import Image

        image_path = assets_dir() / ("trayTemplate@2x.png" if sys.platform == "darwin" else "tray.png")
        with Image.open(image_path) as loaded:
            image = loaded.convert("RGBA")
        try:
            self.icon = self._pystray.Icon(
                "mlxui", image, "mlxui", menu=self._to_pystray(self.controller.menu())
            )
        except _display_errors() as exc:
            raise TrayUnavailable(f"the tray cannot reach the display: {exc}") from exc
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                # Quit from a thread: the handler runs inside the backend's event loop.
                previous[signum] = signal.signal(
                    signum, lambda *_: threading.Thread(target=self.quit, daemon=True).start()
                )
        try:
            self.icon.run(setup=lambda icon: self._poll(setup_done))
        finally:
            self._loop_ended.set()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def quit(self) -> None:
        with self._icon_lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        self._wake.set()
        if self.icon is None:
            return
        self.icon.stop()
        if not self._loop_ended.wait(STOP_GRACE_S):
            # pystray's plain-X backend destroys its window from the event loop while this thread
            # may still be flushing on the same connection; python-xlib can then leave the destroy
            # request queued and the loop waits forever. Flushing from here sends it.
            display = getattr(self.icon, "_display", None)
            if display is not None and hasattr(display, "flush"):
                display.flush()

    def perform_later(self, action: Action) -> None:
        """A menu click: quit here, anything else in a worker thread (HTTP must not block the
        backend's event loop), then refresh at once."""
        if action.kind is ActionKind.QUIT:
            threading.Thread(target=self.quit, daemon=True).start()
            return

        def work() -> None:
            self.controller.perform(action)
            self._wake.set()

        threading.Thread(target=work, daemon=True).start()

    def _poll(self, setup_done: Callable[[TrayApp], None] | None) -> None:
        self.icon.visible = True
        _mark_template(self.icon)
        while not self._stopping.is_set():
            self.controller.refresh()
            self._apply()
            if setup_done is not None:
                setup_done(self)
                setup_done = None
            self._wake.wait(self.interval)
            self._wake.clear()

    def _apply(self) -> None:
        with self._icon_lock:
            if self._stopping.is_set():
                return
            self.icon.menu = self._to_pystray(self.controller.menu())
            self.icon.title = self.controller.title()

    def _to_pystray(self, entries: tuple[MenuEntry, ...]) -> Any:
        pystray = self._pystray
        items = []
        for entry in entries:
            if entry.separator:
                items.append(pystray.Menu.SEPARATOR)
            elif entry.children:
                items.append(
                    pystray.MenuItem(entry.label, self._to_pystray(entry.children), enabled=entry.enabled)
                )
            else:
                items.append(
                    pystray.MenuItem(
                        entry.label,
                        self._callback(entry.action),
                        enabled=entry.enabled and entry.action is not None,
                        default=entry.default,
                    )
                )
        return pystray.Menu(*items)

    def _callback(self, action: Action | None) -> Callable[[Any, Any], None]:
        def clicked(icon: Any, item: Any) -> None:
            if action is not None:
                self.perform_later(action)

        return clicked


def run_tray(config: Config, *, interval: float = POLL_INTERVAL_S) -> None:
    """`mlxui tray`: blocks until the user picks Quit (or the process gets SIGTERM/SIGINT)."""
    TrayApp(TrayController(config), interval=interval).run()


def load_pystray() -> Any:
    """Import pystray (it picks its backend, and on plain X connects to the display, at import)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise TrayUnavailable(
            "the tray needs a graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set)"
        )
    try:
        import PIL  # noqa: F401
        import pystray
    except ImportError as exc:
        raise TrayUnavailable(
            f"the tray needs pystray and Pillow: pip install 'mlxui[tray]' ({exc})"
        ) from exc
    except _display_errors() as exc:
        raise TrayUnavailable(f"the tray cannot reach the display: {exc}") from exc
    return pystray


def _display_errors() -> tuple[type[BaseException], ...]:
    try:
        from Xlib.error import DisplayError
    except ImportError:
        return ()
    return (DisplayError,)


def _mark_template(icon: Any) -> None:
    """macOS: a black template image follows the menu bar's light/dark look. pystray keeps the
    NSImage in `_icon_image` and has no public switch for this."""
    image = getattr(icon, "_icon_image", None)
    if sys.platform == "darwin" and image is not None and hasattr(image, "setTemplate_"):
        image.setTemplate_(True)
