"""/api/settings: read and change the settings the Settings page shows (`mlxui settings` calls it).

`GET` lists every setting by name; the gateway key is never sent back, only `gateway_key_set`. The
memory budget in force is `memory_budget_bytes`, with `memory_budget_source` ("environment",
"setting" or "default: 75 % of 32 GB"); `memory_budget` itself is the setting (null: the default).
`PUT` takes the settings to change; every value is checked first and nothing is saved when one is
refused (422 with `fields`). A gateway key set here applies to the next `/v1` request; a new
`ollama_port` re-binds the Ollama API at once (`ollama` in the answer says where it listens).

No `from __future__ import annotations` here: FastAPI reads the routes' annotations at definition.
"""

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from mlxui.api.common import ApiError, services_ready
from mlxui.services import Services
from mlxui.settings import SettingError


class SettingChanges(BaseModel):
    """The settings to change; leave out what stays. null clears a setting that may be blank."""

    model_config = ConfigDict(extra="forbid")

    on_quit: str | None = None  # "stop" or "keep": what happens to running servers when mlxui quits
    max_running: int | None = None  # most servers running at once; null: no limit
    default_idle_ttl: int | None = None  # idle stop (s) for new profiles; null or 0: never
    gateway_key: str | None = None  # Bearer key /v1 requires; null or "": none
    memory_budget: int | str | None = None  # bytes or "24GB" (1 GB = 1024**3); null: the default
    ollama_port: int | None = None  # the Ollama API's port; 0: off; null: 11434
    bandwidth_limit: int | str | None = None  # bytes/s or "50MB/s" for all downloads; 0 or null: none
    max_connections: int | None = None  # connections per download (1-32); null: 16
    dark: bool | None = None  # dark mode


def settings_router(services: Services) -> APIRouter:
    async def ready() -> None:
        await services_ready(services)

    router = APIRouter(prefix="/api/settings", dependencies=[Depends(ready)], include_in_schema=False)

    @router.get("")
    async def read_settings() -> dict[str, Any]:
        return services.settings_view()

    @router.put("")
    async def change_settings(changes: SettingChanges) -> dict[str, Any]:
        try:
            return await services.change_settings(changes.model_dump(exclude_unset=True))
        except SettingError as exc:
            message = "; ".join(f"{field}: {text}" for field, text in exc.errors.items())
            raise ApiError(422, "validation_error", message, fields=exc.errors) from exc

    return router
