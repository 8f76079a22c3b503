"""The app's JSON API (`/api/*`, `/healthz`): a thin face over the services, one router per area.

The CLI and the tray are its clients; the web pages call the services directly. Routes take
typed parameters and pydantic bodies; errors answer in one envelope (`mlxui.api.common`).
"""

from __future__ import annotations

from fastapi import FastAPI

from mlxui.api.common import install_error_handlers
from mlxui.api.downloads import downloads_router
from mlxui.api.peers import peers_router
from mlxui.api.profiles import profiles_router
from mlxui.api.servers import servers_router
from mlxui.api.settings import settings_router
from mlxui.api.status import status_router
from mlxui.services import Services


def register_api(app: FastAPI, services: Services) -> None:
    install_error_handlers(app)
    for router in (
        status_router(services),
        servers_router(services),
        profiles_router(services),
        settings_router(services),
        downloads_router(services),
        peers_router(services),
    ):
        app.include_router(router)
