"""/api/downloads: list, start and steer downloads from scripts and the CLI; the Models page
drives the same DownloadManager, so a download started here shows in its Downloads tile."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse

from mlxui.api.servers import ApiError, json_object, services_ready
from mlxui.hub.errors import HubError

if TYPE_CHECKING:
    from mlxui.services import Services

ACTIONS = ("pause", "resume", "retry", "cancel")


def register_downloads_api(app: FastAPI, services: Services) -> None:
    from mlxui.services import download_status

    manager = services.downloads

    async def list_downloads() -> list[dict[str, Any]]:
        await services_ready(services)
        return [download_status(st) for st in manager.downloads.values()]

    async def start(request: Request) -> JSONResponse:
        await services_ready(services)
        body = await json_object(request)
        repo_id, revision = body.get("repo_id"), body.get("revision", "main")
        if not isinstance(repo_id, str) or not isinstance(revision, str):
            raise ApiError(400, "invalid_request", 'Give the model as {"repo_id": "org/name"}.')
        try:
            st = await manager.enqueue(repo_id, revision)
        except HubError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return JSONResponse(download_status(st), status_code=202)

    async def act(repo_id: str, action: str) -> dict[str, Any]:
        await services_ready(services)
        if action not in ACTIONS:
            raise ApiError(404, "not_found", f"Downloads can {', '.join(ACTIONS)}; not {action!r}.")
        if repo_id not in manager.downloads:
            raise ApiError(404, "not_found", f"There is no download of {repo_id}.")
        try:
            st = await getattr(manager, action)(repo_id)
        except HubError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return download_status(st)

    app.add_api_route("/api/downloads", list_downloads, methods=["GET"], include_in_schema=False)
    app.add_api_route("/api/downloads", start, methods=["POST"], include_in_schema=False)
    app.add_api_route(
        "/api/downloads/{repo_id:path}/{action}", act, methods=["POST"], include_in_schema=False
    )
