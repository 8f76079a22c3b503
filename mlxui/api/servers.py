"""HTTP API for server profiles and their servers: what `mlxui servers ...` and the tray call.

JSON in and out; every error is `{"error": {"message", "type", "code", ...}}` with `code` the HTTP
status. Routes that change something are POST/PUT/DELETE, so the Host/Origin guard refuses them
from a foreign page. Names in paths are checked against the profile name rules before any lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from nicegui import background_tasks

from mlxui.servers.logs import follow_file, read_tail
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.profile_rules import NAME_PATTERN, ProfileError
from mlxui.servers.state import RUNNING_STATES, ServerState
from mlxui.servers.supervisor import UnknownProfile

if TYPE_CHECKING:
    from mlxui.services import Services

logger = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 1024 * 1024  # an export of a few hundred profiles is a few dozen KB
MAX_TAIL_LINES = 5000
FOLLOW_MAX_S = 24 * 3600  # a follow stream ends after this long; the CLI reconnects


class ApiError(Exception):
    """An answer other than success: status, a type word, one sentence, and optional extras."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "code": self.status, **self.extra}
        return JSONResponse({"error": error}, status_code=self.status)


def register_servers_api(app: FastAPI, services: Services) -> None:
    """Add /api/servers/* and /api/profiles/* to `app`."""
    from mlxui.services import server_status

    api = _ServersApi(services, server_status)

    async def on_api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    app.add_exception_handler(ApiError, on_api_error)
    routes: list[tuple[str, str, Callable[..., Any]]] = [
        ("GET", "/api/servers", api.list_servers),
        ("POST", "/api/servers/stop-all", api.stop_all),
        ("GET", "/api/servers/{name}", api.get_server),
        ("POST", "/api/servers/{name}/start", api.start),
        ("POST", "/api/servers/{name}/stop", api.stop),
        ("POST", "/api/servers/{name}/restart", api.restart),
        ("GET", "/api/servers/{name}/logs", api.logs),
        ("GET", "/api/servers/{name}/logs/stream", api.follow_logs),
        ("GET", "/api/profiles", api.list_profiles),
        ("POST", "/api/profiles", api.create_profile),
        ("GET", "/api/profiles/export", api.export_profiles),  # before any GET /api/profiles/{name}
        ("POST", "/api/profiles/import", api.import_profiles),
        ("PUT", "/api/profiles/{name}", api.update_profile),
        ("DELETE", "/api/profiles/{name}", api.delete_profile),
        ("POST", "/api/profiles/{name}/duplicate", api.duplicate_profile),
    ]
    for method, path, endpoint in routes:
        app.add_api_route(path, endpoint, methods=[method], include_in_schema=False)


class _ServersApi:
    def __init__(self, services: Services, server_status: Callable[[Any], dict[str, Any]]) -> None:
        self.services = services
        self.server_status = server_status
        self.supervisor = services.supervisor
        self.profiles = services.profiles

    # --- servers ------------------------------------------------------------------------------

    async def list_servers(self) -> list[dict[str, Any]]:
        await self._ready()
        return [self._payload(s) for _, s in sorted(self.supervisor.servers.items())]

    async def get_server(self, name: str) -> dict[str, Any]:
        return self._payload(await self._server(name))

    async def start(self, name: str, wait: str = "true") -> JSONResponse:
        """Waits until READY (200) or failed (500, with the error and log tail). `?wait=false`
        answers 202 as soon as the start is under way (the tray does not block on a load)."""
        server = await self._server(name)
        if _flag(wait, "wait"):
            return await self._until_ready(server, self.supervisor.start(server.name), "start")
        task = background_tasks.create(self._start_quietly(server.name), name=f"api start {server.name}")
        for _ in range(100):  # until the start has visibly begun, so a poll never sees the old state
            if task.done() or server.state in RUNNING_STATES:
                break
            await asyncio.sleep(0.01)
        return JSONResponse(self._payload(server), status_code=202)

    async def stop(self, name: str) -> dict[str, Any]:
        server = await self._server(name)
        await self.supervisor.stop(server.name)
        return self._payload(server)

    async def restart(self, name: str) -> JSONResponse:
        server = await self._server(name)
        return await self._until_ready(server, self.supervisor.restart(server.name), "restart")

    async def stop_all(self) -> dict[str, Any]:
        await self._ready()
        running = [s for s in self.supervisor.servers.values() if s.state in RUNNING_STATES]
        await asyncio.gather(*(self.supervisor.stop(s.name) for s in running))
        servers = [self._payload(s) for _, s in sorted(self.supervisor.servers.items())]
        return {"stopped": sorted(s.name for s in running), "servers": servers}

    async def logs(self, name: str, lines: str = "100") -> PlainTextResponse:
        count = _int_param(lines, "lines", 0, MAX_TAIL_LINES)
        server = await self._server(name)
        path = server.log_path
        text, _ = await asyncio.to_thread(read_tail, path, count)
        return PlainTextResponse(text, headers={"X-Log-Path": str(path)})

    async def follow_logs(
        self, request: Request, name: str, lines: str = "10", max_s: str = str(FOLLOW_MAX_S)
    ) -> StreamingResponse:
        """The last `lines` lines, then every byte appended, until the client leaves or `max_s`."""
        count = _int_param(lines, "lines", 0, MAX_TAIL_LINES)
        seconds = _int_param(max_s, "max_s", 1, FOLLOW_MAX_S)
        server = await self._server(name)
        path = server.log_path
        # Starlette cancels this generator when the client disconnects (ASGI spec 2.3 servers);
        # the check in the loop covers servers that report it through `receive` instead.
        stream = follow_file(path, count, seconds, request.is_disconnected)
        return StreamingResponse(
            stream, media_type="text/plain; charset=utf-8", headers={"X-Log-Path": str(path)}
        )

    # --- profiles -----------------------------------------------------------------------------

    async def list_profiles(self) -> list[dict[str, Any]]:
        await self._ready()
        return [p.editable() for p in await self.profiles.all()]

    async def create_profile(self, request: Request) -> JSONResponse:
        await self._ready()
        values = await json_object(request)
        profile = await self._profile_call(self.profiles.create(values))
        return JSONResponse(profile.editable(), status_code=201)

    async def update_profile(self, request: Request, name: str) -> dict[str, Any]:
        await self._profile_exists(name)
        changes = await json_object(request)
        profile = await self._profile_call(self.profiles.update(name, changes))
        return profile.editable()

    async def delete_profile(self, name: str) -> dict[str, Any]:
        await self._profile_exists(name)
        server = self.supervisor.get(name)
        if server is not None and server.state in RUNNING_STATES:
            raise ApiError(
                409, "conflict", f"The server {name} is {server.state}: stop it before deleting its profile."
            )
        await self._profile_call(self.profiles.delete(name))
        return {"deleted": name}

    async def duplicate_profile(self, request: Request, name: str) -> JSONResponse:
        await self._profile_exists(name)
        body = await json_object(request, optional=True)  # {"name": ...} or nothing: "<name>-copy"
        profile = await self._profile_call(self.profiles.duplicate(name, body.get("name")))
        return JSONResponse(profile.editable(), status_code=201)

    async def export_profiles(self) -> Response:
        await self._ready()
        text = await self.profiles.export_yaml()
        headers = {"Content-Disposition": 'attachment; filename="mlxui-profiles.yaml"'}
        return Response(text, media_type="application/yaml; charset=utf-8", headers=headers)

    async def import_profiles(self, request: Request, replace: str = "false") -> dict[str, Any]:
        """The body is an export's YAML text; all or nothing. `?replace=true` overwrites profiles
        of the same name instead of refusing them."""
        await self._ready()
        body = await _read_body(request, MAX_IMPORT_BYTES)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "invalid_request", "The file is not UTF-8 text.") from exc
        imported = await self._profile_call(
            self.profiles.import_yaml(text, replace_existing=_flag(replace, "replace"))
        )
        return {"imported": [p.name for p in imported]}

    # --- helpers ------------------------------------------------------------------------------

    def _payload(self, server: ManagedServer) -> dict[str, Any]:
        return {
            **self.server_status(server),
            "profile": server.profile.editable(),
            "log_path": str(server.log_path),
        }

    async def _ready(self) -> None:
        await services_ready(self.services)

    async def _server(self, name: str) -> ManagedServer:
        _check_name(name)
        await self._ready()
        server = self.supervisor.get(name)
        if server is None:
            raise ApiError(404, "not_found", str(UnknownProfile(name)))
        return server

    async def _profile_exists(self, name: str) -> None:
        _check_name(name)
        await self._ready()
        if await self.profiles.get(name) is None:
            raise ApiError(404, "not_found", str(UnknownProfile(name)))

    async def _profile_call(self, call: Any) -> Any:
        """Run a profile change; field errors become 422; the supervisor learns of a change."""
        try:
            result = await call
        except ProfileError as exc:
            message = "; ".join(f"{field}: {text}" for field, text in exc.errors.items())
            raise ApiError(422, "validation_error", message, fields=exc.errors) from exc
        await self.supervisor.reload_profiles()
        return result

    async def _until_ready(self, server: ManagedServer, call: Any, verb: str) -> JSONResponse:
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
                detail=str(exc), log_tail=tail, server=self._payload(server),
            ) from exc  # fmt: skip
        return JSONResponse(self._payload(server))

    async def _start_quietly(self, name: str) -> None:
        try:
            await self.supervisor.start(name)
        except (ServerError, UnknownProfile) as exc:
            # Nobody waits for this answer: the server shows FAILED with its error instead.
            logger.info("start of %s (asked through the API) failed: %s", name, str(exc).splitlines()[0])


# --- request parsing ----------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ApiError(
            400, "invalid_name", "A profile name is 1 to 64 letters, digits, dots, dashes or underscores."
        )


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ApiError(400, "invalid_request", f"{name} must be true or false, not {value!r}.")


def _int_param(value: str, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} must be a whole number, not {value!r}.") from None
    if not low <= number <= high:
        raise ApiError(400, "invalid_request", f"{name} must be between {low} and {high}.")
    return number


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"The request body is larger than {limit // 1024} KB.")
    return bytes(body)


async def services_ready(services: Services) -> None:
    """Wait for start-up (the DB, profiles, downloads); ApiError 503 if it failed."""
    if not services.ready:
        with contextlib.suppress(TimeoutError):  # answered below: still starting
            await services.wait_started(30.0)
    if not services.ready:
        message = services.startup_error or "mlxui is still starting; try again in a moment."
        raise ApiError(503, "unavailable", message)


async def json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    body = await _read_body(request, MAX_IMPORT_BYTES)
    if optional and not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_request", f"The body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    return data
