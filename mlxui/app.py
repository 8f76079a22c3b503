"""Composition root: builds every service once, wires routes and pages, runs the NiceGUI app."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub import get_token
from nicegui import app, ui

from mlxui.access import KeyGate
from mlxui.api import register_api
from mlxui.chat.store import ChatStore
from mlxui.config import Config
from mlxui.hub.downloads import DownloadManager
from mlxui.security import BodyLimit, HostOriginGuard, HostPolicy
from mlxui.servers.dialects.ollama import OllamaApi
from mlxui.servers.dialects.ollama_listener import OllamaListener
from mlxui.servers.gateway import register_gateway
from mlxui.servers.supervisor import Supervisor
from mlxui.services import Services
from mlxui.ui.code_copy import add_code_copy_buttons
from mlxui.ui.keyboard import add_escape_closes_drawers
from mlxui.ui.pages import register_pages

log = logging.getLogger("mlxui")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
if not ASSETS.is_dir():  # installed as a wheel: assets ship inside the package
    ASSETS = Path(__file__).resolve().parent / "assets"


def create_app(config: Config) -> Services:
    """Register middleware, endpoints and pages on NiceGUI's app; returns the services."""
    services = Services(
        config=config,
        downloads=DownloadManager(config.hf_cache, config.hf_endpoint, token_provider=get_token),
        supervisor=Supervisor(config),
        chats=ChatStore(config.images_dir),
    )
    register_api(app, services)
    app.add_middleware(BodyLimit)
    key = services.supervisor.settings
    app.add_middleware(KeyGate, key_provider=lambda: key.gateway_key, beyond_loopback=not config.is_loopback)
    extra_hosts = [h.strip() for h in os.environ.get("MLXUI_ALLOWED_HOSTS", "").split(",") if h.strip()]
    policy = HostPolicy(config.host, extra_hosts, port=config.port)
    app.add_middleware(HostOriginGuard, policy=policy)  # outermost
    app.add_static_files("/assets", str(ASSETS))
    config.ensure_dirs()
    app.add_static_files("/chat-images", str(config.images_dir))  # only content-hash names live there
    gateway = register_gateway(
        app,
        services.supervisor,
        api_key_provider=lambda: services.supervisor.settings.gateway_key,
        origins=config.origins,
        peers=services.peers,
    )
    ollama = OllamaApi(gateway, services.downloads, config.hf_cache)
    listener = services.ollama = OllamaListener(
        ollama, config.host, services.ollama_port, extra_hosts, origins=config.origins
    )
    register_pages(services)
    add_code_copy_buttons()
    add_escape_closes_drawers()
    app.on_startup(services.start)
    app.on_startup(lambda: _start_ollama(services, listener))
    app.on_shutdown(listener.stop)  # before the services: no new request reaches a model
    app.on_shutdown(services.stop)
    return services


async def _start_ollama(services: Services, listener: OllamaListener) -> None:
    """The Ollama API's listener, once the settings (its port) are loaded."""
    await services.wait_started()
    if services.ready:
        await listener.start()


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
