"""Tells every open page when a server is stopped to make room for another model ("a was stopped
to make room for b"), from the supervisor's "evicted" event. Evictions happen in a start's task,
where `ui.notify` has no page slot; the `Notifier` made while the page builds shows it here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.servers.model_defaults import display_name
from mlxui.servers.state import ServerEvent
from mlxui.ui.notifier import Notifier

if TYPE_CHECKING:
    from mlxui.servers.supervisor import Supervisor

NOTICE_MS = 10_000


def announce_evictions(supervisor: Supervisor) -> None:
    """Call while a page builds: from now until the page closes, each eviction is announced."""
    notify = Notifier()

    def changed(event: ServerEvent) -> None:
        if event.kind == "evicted":
            notify(eviction_message(event), type="info", timeout=NOTICE_MS, close_button="Dismiss")

    ui.context.client.on_delete(supervisor.on_change(changed))


def eviction_message(event: ServerEvent) -> str:
    """ "a was stopped to make room for b" (from the event's note, "Stopped to make room for b")."""
    note = event.note or "Stopped to make room for another model"
    return f"{display_name(event.server.profile)} was {note[:1].lower()}{note[1:]}"
