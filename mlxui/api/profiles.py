"""/api/profiles: list, create, edit, duplicate, delete, export and import server profiles.

Every write goes through the supervisor's profile book, the same one the Servers page uses, so the
rules are the same everywhere: e.g. deleting the profile of a running server stops that server
first. Field errors answer 422 with `fields` (field -> sentence).

No `from __future__ import annotations` here: FastAPI reads the routes' annotations at definition.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, JsonValue

from mlxui.api.common import ApiError, check_name, services_ready, text_body
from mlxui.servers.profile_rules import ProfileError
from mlxui.servers.state import RUNNING_STATES, UnknownProfile
from mlxui.services import Services

Name = Annotated[str, Depends(check_name)]


class ProfileFields(BaseModel):
    """A profile's settings. For a new profile `name` and `model` are needed; an edit sends only
    what changes. Left out: `kind` follows the model, `port` is chosen when the server starts,
    `idle_ttl` is the "default idle stop" setting (for a new profile)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    model: str | None = None  # a downloaded repo id (org/name) or a model folder's absolute path
    kind: str | None = None  # "lm" (mlx_lm.server) or "vlm" (mlx_vlm.server)
    port: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    prompt_cache_size: int | None = None
    chat_template_args: dict[str, JsonValue] | str | None = None
    draft_model: str | None = None
    autostart: bool | None = None
    pinned: bool | None = None
    idle_ttl: int | None = None  # seconds without a request before an on-demand server stops
    # Distributed (docs/distributed.md): processes per host (no hosts: local ranks), hosts (this
    # machine first; a list or "a,b"), mlx.launch's backend, a hostfile, the remote Python, and
    # "tensor" (default) or "pipeline".
    ranks: int | None = None
    hosts: list[str] | str | None = None
    backend: str | None = None
    hostfile: str | None = None
    remote_python: str | None = None
    parallel: str | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class CopyName(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None  # default: "<name>-copy", "<name>-copy-2", ...


def profiles_router(services: Services) -> APIRouter:
    """The /api/profiles routes, bound to `services`."""
    book = services.supervisor.profiles

    async def ready() -> None:
        await services_ready(services)

    router = APIRouter(prefix="/api/profiles", dependencies=[Depends(ready)], include_in_schema=False)

    async def existing(name: Name) -> str:
        if await book.get(name) is None:
            raise ApiError(404, "not_found", str(UnknownProfile(name)))
        return name

    Existing = Annotated[str, Depends(existing)]

    @router.get("")
    async def list_profiles() -> list[dict[str, Any]]:
        return [p.editable() for p in await book.all()]

    @router.post("", status_code=201)
    async def create_profile(fields: ProfileFields) -> dict[str, Any]:
        return (await _checked(book.create(fields.given()))).editable()

    @router.get("/export")  # before any GET /api/profiles/{name}
    async def export_profiles() -> Response:
        headers = {"Content-Disposition": 'attachment; filename="mlxui-profiles.yaml"'}
        return Response(
            await book.export_yaml(), media_type="application/yaml; charset=utf-8", headers=headers
        )

    @router.post("/import")
    async def import_profiles(
        text: Annotated[str, Depends(text_body)], replace: bool = False
    ) -> dict[str, Any]:
        """The body is an export's YAML text; all or nothing. `?replace=true` overwrites profiles
        of the same name instead of refusing them."""
        imported = await _checked(book.import_yaml(text, replace_existing=replace))
        return {"imported": [p.name for p in imported]}

    @router.put("/{name}")
    async def update_profile(name: Existing, fields: ProfileFields) -> dict[str, Any]:
        return (await _checked(book.update(name, fields.given()))).editable()

    @router.delete("/{name}")
    async def delete_profile(name: Existing) -> dict[str, Any]:
        server = services.supervisor.get(name)
        was_running = server is not None and server.state in RUNNING_STATES
        await _checked(book.delete(name))  # stops a running server first
        return {"deleted": name, "stopped": was_running}

    @router.post("/{name}/duplicate", status_code=201)
    async def duplicate_profile(
        name: Existing, body: Annotated[CopyName | None, Body()] = None
    ) -> JSONResponse:
        copy = await _checked(book.duplicate(name, body.name if body else None))
        return JSONResponse(copy.editable(), status_code=201)

    return router


async def _checked(call: Any) -> Any:
    """Run a profile write; field errors become 422 with one sentence per field."""
    try:
        return await call
    except ProfileError as exc:
        message = "; ".join(f"{field}: {text}" for field, text in exc.errors.items())
        raise ApiError(422, "validation_error", message, fields=exc.errors) from exc
