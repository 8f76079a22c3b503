"""Notifications from background work: `ui.notify` needs the page's slot, which a task started
with `background_tasks.create` no longer has ("slot stack is empty"). `Notifier` remembers the
element it was made in and notifies inside it later, as long as that page is still open."""

from __future__ import annotations

import logging
from typing import Any

from nicegui import ui

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self) -> None:
        self.anchor = ui.context.slot.parent  # made while the page builds or handles an event

    def __call__(self, message: str, **kwargs: Any) -> None:
        if self.anchor.is_deleted or not self.anchor.client.has_socket_connection:
            log.info("not shown (the page is closed): %s", message)
            return
        with self.anchor:
            ui.notify(message, **kwargs)
