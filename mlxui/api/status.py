"""Small JSON endpoints the CLI, the tray and health checks use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from mlxui import __version__
from mlxui.system.backend import detect_backend

if TYPE_CHECKING:
    from mlxui.services import Services


def register_status_api(app: FastAPI, services: Services) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        if not services.ready:
            detail = (
                {"status": "failed", "error": services.startup_error}
                if services.startup_error
                else {"status": "starting"}
            )
            return JSONResponse(detail, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return status_payload(services)


def status_payload(services: Services) -> dict[str, Any]:
    """What `mlxui status` and the tray show. Lists stay empty until their services exist."""
    return {
        "app": "mlxui",
        "version": __version__,
        "backend": detect_backend(),
        "url": services.config.base_url,
        "ready": services.ready,
        "servers": services.status_list("servers"),
        "downloads": services.status_list("downloads"),
    }
