"""A private X display (Xvfb) for GUI tests, a stand-in system tray, and screenshots of windows."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image, ImageGrab


@dataclass
class XDisplay:
    name: str  # ":N"
    process: subprocess.Popen


@contextmanager
def xvfb(size: str = "1400x1000x24", timeout: float = 15.0) -> Iterator[XDisplay]:
    """Start Xvfb on a free display number (it reports the number itself: -displayfd)."""
    if shutil.which("Xvfb") is None:
        raise FileNotFoundError("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        number = os.read(read_fd, 32).decode().strip() if ready else ""
        if not number:
            raise RuntimeError(f"Xvfb did not report a display within {timeout} s")
        yield XDisplay(f":{number}", process)
    finally:
        os.close(read_fd)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class FakeSystray:
    """Owns the X system-tray selection like a desktop's tray does, and records which windows ask
    to be docked (the XEMBED system tray protocol's SYSTEM_TRAY_REQUEST_DOCK)."""

    display_name: str
    docked: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _docked_event: threading.Event = field(default_factory=threading.Event)

    def wait_docked(self, timeout: float) -> bool:
        return self._docked_event.wait(timeout)

    def serve(self, ready: threading.Event) -> None:
        from Xlib import X, display

        conn = display.Display(self.display_name)
        try:
            screen = conn.screen()
            window = screen.root.create_window(0, 0, 1, 1, 0, screen.root_depth)
            selection = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
            opcode = conn.intern_atom("_NET_SYSTEM_TRAY_OPCODE")
            window.set_selection_owner(selection, X.CurrentTime)
            conn.sync()
            ready.set()
            while not self._stop.is_set():
                select.select([conn.fileno()], [], [], 0.1)
                while conn.pending_events():
                    event = conn.next_event()
                    if event.type == X.ClientMessage and event.client_type == opcode:
                        _, data = event.data
                        if data[1] == 0:  # SYSTEM_TRAY_REQUEST_DOCK; data[2] is the icon's window
                            self.docked.append(data[2])
                            self._docked_event.set()
        finally:
            conn.close()


@contextmanager
def fake_systray(display_name: str) -> Iterator[FakeSystray]:
    tray = FakeSystray(display_name)
    ready = threading.Event()
    thread = threading.Thread(target=tray.serve, args=(ready,), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fake system tray could not take the selection")
    try:
        yield tray
    finally:
        tray._stop.set()
        thread.join(5)


def find_window(display_name: str, title: str) -> dict | None:
    """The first mapped top-level window named `title`: its id, geometry and whether it has an icon."""
    from Xlib import X, display

    conn = display.Display(display_name)
    try:
        icon_atom = conn.intern_atom("_NET_WM_ICON")
        for window in conn.screen().root.query_tree().children:
            if window.get_wm_name() != title or window.get_attributes().map_state != X.IsViewable:
                continue
            geometry = window.get_geometry()
            icon = window.get_full_property(icon_atom, X.AnyPropertyType)
            return {
                "id": window.id,
                "box": (geometry.x, geometry.y, geometry.x + geometry.width, geometry.y + geometry.height),
                "has_icon": icon is not None and len(icon.value) > 2,
            }
        return None
    finally:
        conn.close()


def screenshot(display_name: str) -> Image.Image:
    return ImageGrab.grab(xdisplay=display_name)


def distinct_colours(image: Image.Image) -> int:
    """How many colours an image has: a blank or single-colour window has 1, rendered text many."""
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return len(colours) if colours is not None else 1 << 16


def close_window(display_name: str, window_id: int) -> None:
    """Ask a window to close as a window manager's close button does (WM_DELETE_WINDOW)."""
    from Xlib import X, display
    from Xlib.protocol import event

    conn = display.Display(display_name)
    try:
        window = conn.create_resource_object("window", window_id)
        message = event.ClientMessage(
            window=window,
            client_type=conn.intern_atom("WM_PROTOCOLS"),
            data=(32, [conn.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]),
        )
        window.send_event(message, event_mask=X.NoEventMask)
        conn.sync()
    finally:
        conn.close()
