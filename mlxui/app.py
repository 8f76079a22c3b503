"""Composition root: builds every service once, wires routes and pages, runs the NiceGUI app."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import get_token
from nicegui import app, ui

from mlxui import db
from mlxui.api.downloads import register_downloads_api
from mlxui.api.security import HostOriginGuard, HostPolicy
from mlxui.api.servers import register_servers_api
from mlxui.api.status import register_status_api
from mlxui.chat.store import ChatStore
from mlxui.config import Config
from mlxui.hub.downloads import DownloadManager
from mlxui.servers.gateway import register_gateway
from mlxui.servers.profiles import Profiles
from mlxui.servers.supervisor import Supervisor
from mlxui.ui.code_copy import add_code_copy_buttons
from mlxui.ui.pages import register_pages
from mlxui.ui.theme import Theme

log = logging.getLogger("mlxui")
GATEWAY_KEY_SETTING = "gateway.api_key"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
if not ASSETS.is_dir():  # installed as a wheel: assets ship inside the package
    ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class Services:
    """Everything a page or endpoint may use, built once at start-up and handed down."""

    config: Config
    downloads: DownloadManager
    supervisor: Supervisor
    profiles: Profiles
    chats: ChatStore
    theme: Theme = field(default_factory=Theme)
    ready: bool = False
    gateway_key: str | None = None  # Settings: when set, /v1/* needs "Authorization: Bearer <key>"
    startup_error: str | None = None
    _started: asyncio.Event = field(default_factory=asyncio.Event)
    status_sources: dict[str, Callable[[], list[dict[str, Any]]]] = field(default_factory=dict)

    def status_list(self, name: str) -> list[dict[str, Any]]:
        source = self.status_sources.get(name)
        return source() if source else []

    async def start(self) -> None:
        try:
            self.config.ensure_dirs()
            await db.init_db(self.config.db_path)
            await self.theme.load()
            key = await db.get_setting(GATEWAY_KEY_SETTING, None)
            self.gateway_key = key if isinstance(key, str) and key else None
            await self.downloads.restore()
            await self.supervisor.start_up()
        except (db.DatabaseError, OSError) as exc:
            self.startup_error = str(exc)
            log.error("mlxui cannot start: %s", exc)
        else:
            self.ready = True
            log.info("mlxui ready at %s (data in %s)", self.config.base_url, self.config.home)
        finally:
            self._started.set()

    async def wait_started(self, timeout: float = 60.0) -> None:
        """NiceGUI runs start-up hooks as background tasks: pages wait here before touching services."""
        await asyncio.wait_for(self._started.wait(), timeout)

    async def stop(self) -> None:
        self.ready = False
        await self.downloads.shutdown()  # rows keep their phase: the next start resumes them
        await self.supervisor.shut_down()  # stops servers unless the setting says keep them
        await db.close_db()


def create_app(config: Config) -> Services:
    """Register middleware, endpoints and pages on NiceGUI's app; returns the services."""
    services = Services(
        config=config,
        downloads=DownloadManager(config.hf_cache, config.hf_endpoint, token_provider=get_token),
        supervisor=Supervisor(config),
        profiles=Profiles(config),
        chats=ChatStore(config.images_dir),
    )
    services.status_sources["servers"] = lambda: [
        server_status(s) for s in services.supervisor.servers.values()
    ]
    services.status_sources["downloads"] = lambda: [
        download_status(st) for st in services.downloads.downloads.values()
    ]
    extra_hosts = [h.strip() for h in os.environ.get("MLXUI_ALLOWED_HOSTS", "").split(",") if h.strip()]
    app.add_middleware(HostOriginGuard, policy=HostPolicy(config.host, extra_hosts))
    app.add_static_files("/assets", str(ASSETS))
    config.ensure_dirs()
    app.add_static_files("/chat-images", str(config.images_dir))  # only content-hash names live there
    register_status_api(app, services)
    register_servers_api(app, services)
    register_downloads_api(app, services)
    register_gateway(app, services.supervisor, api_key_provider=lambda: services.gateway_key)
    register_pages(services)
    add_code_copy_buttons()
    app.on_startup(services.start)
    app.on_shutdown(services.stop)
    return services


def download_status(st: Any) -> dict[str, Any]:
    keys = (
        "repo_id",
        "state",
        "bytes_done",
        "bytes_total",
        "speed_bps",
        "eta_s",
        "current_file",
        "note",
        "error",
    )
    return {key: getattr(st, key) for key in keys}


def server_status(server: Any) -> dict[str, Any]:
    m = server.metrics
    return {
        "name": server.name, "state": str(server.state), "model": server.profile.model, "kind": server.kind,
        "pid": server.pid, "port": server.port, "error": server.error, "on_demand": server.on_demand,
        "rss_bytes": m.rss_bytes, "cpu_percent": m.cpu_percent, "gpu_util": m.gpu_util,
        "gpu_mem_bytes": m.gpu_mem_bytes, "tokens_per_s": round(m.tokens_per_s, 2), "requests": m.requests,
        "prompt_tokens_total": m.prompt_tokens_total, "completion_tokens_total": m.completion_tokens_total,
        "uptime_s": m.uptime_s,
    }  # fmt: skip


def serve(config: Config, *, native: bool = False, show: bool = True) -> None:
    """Run the app until interrupted (blocks)."""
    create_app(config)
    if native:
        from mlxui.system.native import native_start_args

        app.native.start_args.update(native_start_args())  # title icon on Linux/macOS windows too
    ui.run(
        host=config.host,
        port=config.port,
        title="mlxui",
        favicon=ASSETS / "icon.svg",
        dark=None,
        reload=False,
        show=show and not native,
        native=native,
        window_size=(1280, 860) if native else None,
        show_welcome_message=False,
        uvicorn_logging_level="warning",
    )
