"""Which server a request's `model` names.

A model answers to its profile's name (in any case), to its reference (repo id or folder path), to
its short name (`Qwen3-4B-4bit` for `mlx-community/Qwen3-4B-4bit`, a folder's name) when only one
server has it. An exact name wins over every alias, so a profile called like a short name is found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mlxui.servers.model_defaults import short_name
from mlxui.servers.process import ManagedServer


def find_server(servers: Mapping[str, ManagedServer], model: str) -> ManagedServer | None:
    """The one server `model` names, or None (unknown, or an alias several servers share)."""
    if model in servers:
        return servers[model]
    tests: tuple[Callable[[ManagedServer], bool], ...] = (
        lambda s: s.name.casefold() == model.casefold(),
        lambda s: s.profile.model == model,
        lambda s: short_name(s.profile.model) == model,
        lambda s: short_name(s.profile.model).casefold() == model.casefold(),
    )
    for matches in tests:
        found = [s for s in servers.values() if matches(s)]
        if len(found) == 1:
            return found[0]
        if found:
            return None  # ambiguous: the client must use a longer name
    return None


def aliases(server: ManagedServer, servers: Mapping[str, ManagedServer]) -> list[str]:
    """The other names that reach `server` (for /v1/models and the UI), unambiguous ones only."""
    names = [server.profile.model, short_name(server.profile.model)]
    return sorted({n for n in names if n != server.name and find_server(servers, n) is server})


def known_names(servers: Mapping[str, ManagedServer]) -> list[str]:
    """Every name a request may use (for "did you mean" hints)."""
    names = set(servers)
    for server in servers.values():
        names.update(aliases(server, servers))
    return sorted(names)
