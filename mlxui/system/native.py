"""What `mlxui run --native` needs: pywebview plus a GUI backend, and the window's icon.

pywebview itself installs on every platform, but on Linux it draws with Qt (QtWebEngine) or
GTK (WebKit2 through PyGObject), neither of which comes with it; without one, the window process
fails after the server has already started. So the check happens before anything starts.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'mlxui[native]'"
# Any one of these gives pywebview a web view on Linux (its Qt backend goes through qtpy).
LINUX_QT_WEBENGINES = ("PySide6.QtWebEngineWidgets", "PyQt6.QtWebEngineWidgets", "PyQt5.QtWebEngineWidgets")


def assets_dir() -> Path:
    """`assets/` of a source checkout, or the copy shipped inside the installed package."""
    checkout = Path(__file__).resolve().parents[2] / "assets"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parents[1] / "assets"


def native_problem(platform: str | None = None) -> str | None:
    """None when a native window can open here, else one line saying what to install."""
    platform = sys.platform if platform is None else platform
    try:
        import webview  # noqa: F401  (imported, not just found: a broken install counts as missing)
    except ImportError:
        return f"the native window needs pywebview: {INSTALL_HINT}"
    if platform.startswith("linux") and not _linux_backend_available():
        return f"the native window needs a GUI toolkit for pywebview (Qt WebEngine or GTK): {INSTALL_HINT}"
    return None


def native_start_args() -> dict[str, Any]:
    """Extra `webview.start()` arguments (NiceGUI: `app.native.start_args.update(...)`): the window
    icon, which pywebview applies on Qt and GTK (macOS takes the app bundle's icon)."""
    icon = assets_dir() / "icon.png"
    return {"icon": str(icon)} if icon.is_file() else {}


def _linux_backend_available() -> bool:
    qt = _importable("qtpy") and any(_importable(name) for name in LINUX_QT_WEBENGINES)
    return qt or _importable("gi")


def _importable(name: str) -> bool:
    """Whether `import name` would find the module, without importing it (Qt is slow to load)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False
