"""The fleet's membership: which servers exist for the profiles and the local models.

`plan_fleet` is the one rule, kept free of I/O so it reads (and tests) on its own: one server per
named profile; one implicit server per servable local model that no profile uses; a running implicit
server whose model a new profile now uses becomes that profile's server (the default was
"materialised"); a running implicit server whose files went keeps running until it is stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlxui.hub.local import LocalEntry
from mlxui.servers.model_defaults import default_profile, servable
from mlxui.servers.process import ManagedServer
from mlxui.servers.profiles import Profile
from mlxui.servers.state import RUNNING_STATES


@dataclass
class FleetPlan:
    servers: dict[str, ManagedServer] = field(default_factory=dict)  # the new fleet, by name
    added: list[ManagedServer] = field(default_factory=list)
    gone: list[ManagedServer] = field(default_factory=list)  # to stop (if running) and forget
    handed_over: list[ManagedServer] = field(default_factory=list)  # implicit -> profile, still running


def plan_fleet(
    current: Iterable[ManagedServer],
    profiles: Iterable[Profile],
    entries: Mapping[str, LocalEntry],
    *,
    new_server: Callable[[Profile], ManagedServer],
    idle_ttl: int | None,
    saved_runs: Mapping[str, dict[str, Any]],
) -> FleetPlan:
    """The fleet for `profiles` and the local models `entries` (by model reference)."""
    plan = FleetPlan()
    current = list(current)
    by_id = {s.profile.id: s for s in current if not s.profile.implicit}
    implicit = {s.name: s for s in current if s.profile.implicit}
    profiles = list(profiles)
    for profile in profiles:
        server = by_id.pop(profile.id, None)
        if server is None and profile.model in implicit and implicit[profile.model].state in RUNNING_STATES:
            server = implicit.pop(profile.model)
            plan.handed_over.append(server)
            plan.added.append(server)
        elif server is None:
            server = new_server(profile)
            plan.added.append(server)
        elif profile.editable() != server.profile.editable():
            server.failed_at = None  # a changed profile may well start now
        server.profile, server.name = profile, profile.name
        plan.servers[profile.name] = server
    used = {p.model for p in profiles}
    for ref, entry in entries.items():
        if ref in used or not servable(entry):
            continue
        profile = default_profile(entry, idle_ttl=idle_ttl, run=saved_runs.get(ref))
        server = implicit.pop(ref, None)
        if server is None:
            server = new_server(profile)
            plan.added.append(server)
        else:
            server.profile, server.kind = profile, profile.kind  # applies at its next start
        plan.servers[ref] = server
    for ref, server in list(implicit.items()):
        if server.state in RUNNING_STATES and ref not in used:
            plan.servers[ref] = implicit.pop(ref)
    plan.gone = [*by_id.values(), *implicit.values()]
    return plan
