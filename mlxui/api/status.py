"""Small JSON endpoints the CLI, the tray and health checks use.

No `from __future__ import annotations` here: FastAPI reads the routes' annotations at definition.
"""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mlxui import __version__
from mlxui.services import Services, download_statuses, memory_status, server_statuses
from mlxui.system.backend import detect_backend


def status_router(services: Services) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        if not services.ready:
            detail = (
                {"status": "failed", "error": services.startup_error}
                if services.startup_error
                else {"status": "starting"}
            )
            return JSONResponse(detail, status_code=503)
        return JSONResponse({"status": "ok"})

    @router.get("/api/status")
    async def status() -> dict[str, Any]:
        return status_payload(services)

    return router


def status_payload(services: Services) -> dict[str, Any]:
    """What `mlxui status` and the tray show. Lists stay empty until their services exist."""
    return {
        "app": "mlxui",
        "version": __version__,
        "backend": detect_backend(),
        "url": services.config.base_url,
        "ready": services.ready,
        "servers": server_statuses(services),
        "downloads": download_statuses(services),
        "memory": memory_status(services),
        "ollama": services.ollama.status() if services.ollama is not None else None,
    }
