"""/api/servers: list, start, stop and restart servers and read their logs (the CLI and tray call it).

JSON in and out; errors in the envelope of `mlxui.api.common`. Routes that change something are
POST, so the Host/Origin guard refuses them from a foreign page. A server is named in the path by
anything the gateway accepts as a `model`: a profile name, or a model's repo id, folder path or
short name (a model without a profile has a server too), so the name segment may hold "/".

No `from __future__ import annotations` here: FastAPI reads the routes' annotations at definition,
and some name dependencies that live inside `servers_router`.
"""

import asyncio
import logging
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from nicegui import background_tasks

from mlxui.api.common import ApiError, services_ready
from mlxui.servers.logs import follow_file, read_tail
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.state import RUNNING_STATES, ServerState, UnknownProfile
from mlxui.services import Services, server_status

logger = logging.getLogger(__name__)

MAX_TAIL_LINES = 5000
FOLLOW_MAX_S = 24 * 3600  # a follow stream ends after this long; the CLI reconnects

MAX_NAME_CHARS = 1024


def check_server_name(name: str) -> str:
    """A server's name from the path: any model name, but printable and of sane length."""
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ApiError(400, "invalid_name", "Name a server by its profile name or its model's name.")
    return name


Name = Annotated[str, Depends(check_server_name)]


def servers_router(services: Services) -> APIRouter:
    """The /api/servers routes, bound to `services`."""
    supervisor = services.supervisor

    async def ready() -> None:
        await services_ready(services)

    router = APIRouter(prefix="/api/servers", dependencies=[Depends(ready)], include_in_schema=False)

    async def existing(name: Name) -> ManagedServer:
        server = await supervisor.lookup(name)
        if server is None:
            raise ApiError(404, "not_found", str(UnknownProfile(name)))
        return server

    Server = Annotated[ManagedServer, Depends(existing)]

    @router.get("")
    async def list_servers(all: bool = False) -> list[dict[str, Any]]:  # noqa: A002 (the query's name)
        """Profiles' servers and running local models; `?all=true` adds every stopped local model."""
        if all:
            await supervisor.refresh_models(max_age=2.0)
        return [payload(s) for s in supervisor.fleet(every_model=all)]

    @router.post("/stop-all")
    async def stop_all() -> dict[str, Any]:
        running = [s for s in supervisor.servers.values() if s.state in RUNNING_STATES]
        await asyncio.gather(*(supervisor.stop(s.name) for s in running))
        servers = [payload(s) for s in supervisor.fleet()]
        return {"stopped": sorted(s.name for s in running), "servers": servers}

    @router.post("/{name:path}/start")
    async def start(server: Server, wait: bool = True) -> JSONResponse:
        """Waits until READY (200) or failed (500, with the error and log tail). `?wait=false`
        answers 202 as soon as the start is under way (the tray does not block on a load)."""
        if wait:
            return await until_ready(server, supervisor.start(server.name), "start")
        task = background_tasks.create(start_quietly(server.name), name=f"api start {server.name}")
        for _ in range(100):  # until the start has visibly begun, so a poll never sees the old state
            if task.done() or server.state in RUNNING_STATES:
                break
            await asyncio.sleep(0.01)
        return JSONResponse(payload(server), status_code=202)

    @router.post("/{name:path}/stop")
    async def stop(server: Server) -> dict[str, Any]:
        await supervisor.stop(server.name)
        return payload(server)

    @router.post("/{name:path}/restart")
    async def restart(server: Server) -> JSONResponse:
        return await until_ready(server, supervisor.restart(server.name), "restart")

    @router.get("/{name:path}/logs")
    async def logs(
        server: Server, lines: Annotated[int, Query(ge=0, le=MAX_TAIL_LINES)] = 100
    ) -> PlainTextResponse:
        text, _ = await asyncio.to_thread(read_tail, server.log_path, lines)
        return PlainTextResponse(text, headers={"X-Log-Path": str(server.log_path)})

    @router.get("/{name:path}/logs/stream")
    async def follow_logs(
        request: Request,
        server: Server,
        lines: Annotated[int, Query(ge=0, le=MAX_TAIL_LINES)] = 10,
        max_s: Annotated[int, Query(ge=1, le=FOLLOW_MAX_S)] = FOLLOW_MAX_S,
    ) -> StreamingResponse:
        """The last `lines` lines, then every byte appended, until the client leaves or `max_s`."""
        path = server.log_path
        # Starlette cancels this generator when the client disconnects (ASGI spec 2.3 servers);
        # the check in the loop covers servers that report it through `receive` instead.
        stream = follow_file(path, lines, max_s, request.is_disconnected)
        return StreamingResponse(
            stream, media_type="text/plain; charset=utf-8", headers={"X-Log-Path": str(path)}
        )

    @router.get("/{name:path}")
    async def get_server(server: Server) -> dict[str, Any]:
        return payload(server)

    async def until_ready(server: ManagedServer, call: Awaitable[Any], verb: str) -> JSONResponse:
        try:
            await call
        except UnknownProfile as exc:  # deleted meanwhile
            raise ApiError(404, "not_found", str(exc)) from exc
        except ServerError as exc:
            # The supervisor's error is one sentence, then (for a load failure) the log's last lines.
            sentence, _, tail = str(exc).partition("\n")
            failed = server.state == ServerState.FAILED
            raise ApiError(
                500 if failed else 409, "start_failed" if failed else "conflict",
                f"{server.name} did not {verb}: {sentence}",
                detail=str(exc), log_tail=tail, server=payload(server),
            ) from exc  # fmt: skip
        return JSONResponse(payload(server))

    async def start_quietly(name: str) -> None:
        try:
            await supervisor.start(name)
        except (ServerError, UnknownProfile) as exc:
            # Nobody waits for this answer: the server shows FAILED with its error instead.
            logger.info("start of %s (asked through the API) failed: %s", name, str(exc).splitlines()[0])

    return router


def payload(server: ManagedServer) -> dict[str, Any]:
    """A server as the API shows it: its status, its profile's settings and its log file."""
    return {**server_status(server), "profile": server.profile.editable(), "log_path": str(server.log_path)}
