"""/api/peers: the other mlxui machines whose models this gateway lists and forwards to.

`GET` lists them with their state (`up`, `reason`) and models (`<peer>/<id>`); a key is never sent
back, only `key_set`. `POST` adds one (`url`, optional `key` and `name`): 201 with the peer as
checked once, 422 with a sentence when the address or name is refused. `DELETE /api/peers/{name}`
removes one. `mlxui peers` calls these.

No `from __future__ import annotations` here: FastAPI reads the routes' annotations at definition.
"""

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from mlxui.api.common import ApiError, services_ready
from mlxui.servers.peers import PeerError
from mlxui.services import Services


class NewPeer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str  # http(s)://host:port of the other mlxui (its /v1 is found under it)
    key: str | None = None  # that machine's gateway key, when it has one
    name: str | None = None  # how its models are prefixed here; default: from the host name


def peers_router(services: Services) -> APIRouter:
    async def ready() -> None:
        await services_ready(services)

    router = APIRouter(prefix="/api/peers", dependencies=[Depends(ready)], include_in_schema=False)

    @router.get("")
    async def list_peers() -> list[dict[str, Any]]:
        return services.peers.views()

    @router.post("", status_code=201)
    async def add_peer(new: NewPeer) -> dict[str, Any]:
        try:
            peer = await services.peers.add(new.url, new.key, new.name)
        except PeerError as exc:
            raise ApiError(422, "validation_error", str(exc)) from exc
        await services.peers.refresh()  # the answer says at once whether it is reachable
        return peer.view()

    @router.delete("/{name}")
    async def remove_peer(name: str) -> dict[str, Any]:
        try:
            await services.peers.remove(name)
        except PeerError as exc:
            raise ApiError(404, "not_found", str(exc)) from exc
        return {"removed": name}

    return router
