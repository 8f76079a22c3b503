"""/api/downloads: list, start and steer downloads from scripts and the CLI; the Models page
drives the same DownloadManager, so a download started here shows in its Downloads tile.

No `from __future__ import annotations` here: FastAPI reads the routes' annotations at definition.
"""

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from mlxui.api.common import ApiError, services_ready
from mlxui.hub.bandwidth import parse_rate
from mlxui.hub.errors import HubError
from mlxui.services import Services, download_status, download_statuses

ACTIONS = ("pause", "resume", "retry", "cancel")


class DownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo_id: str  # org/name on the Hub
    revision: str = "main"
    limit: int | str | None = None  # this download's bandwidth limit: bytes/s or "50MB/s"; 0: none


def downloads_router(services: Services) -> APIRouter:
    manager = services.downloads

    async def ready() -> None:
        await services_ready(services)

    router = APIRouter(prefix="/api/downloads", dependencies=[Depends(ready)], include_in_schema=False)

    @router.get("")
    async def list_downloads() -> list[dict[str, Any]]:
        return download_statuses(services)

    @router.post("", status_code=202)
    async def start(wanted: DownloadRequest) -> JSONResponse:
        try:
            limit = _rate(wanted.limit)
            st = await manager.enqueue(wanted.repo_id, wanted.revision, limit_bps=limit)
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        except HubError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return JSONResponse(download_status(st), status_code=202)

    @router.post("/{repo_id:path}/{action}")
    async def act(repo_id: str, action: str) -> dict[str, Any]:
        if action not in ACTIONS:
            raise ApiError(404, "not_found", f"Downloads can {', '.join(ACTIONS)}; not {action!r}.")
        if repo_id not in manager.downloads:
            raise ApiError(404, "not_found", f"There is no download of {repo_id}.")
        try:
            st = await getattr(manager, action)(repo_id)
        except HubError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return download_status(st)

    return router


def _rate(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        if isinstance(value, int) and value < 0:
            raise ValueError("A limit cannot be negative; 0 means no limit.")
        return value
    return parse_rate(value)
