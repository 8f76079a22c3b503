"""Tells every open page when a download finishes, with the two next steps as actions: Chat (a
link to the chat page with that model) and Create profile (the new-profile editor, prefilled).

Downloads finish in the download manager's task, where `ui.notify` has no page slot; the
`Notifier` made while the page builds shows the notice in this page as long as it is open."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from mlxui.hub.downloads import DownloadManager
from mlxui.state import DownloadState
from mlxui.ui.links import chat_url, new_profile_url
from mlxui.ui.notifier import Notifier

NOTICE_MS = 20_000  # long enough to reach for an action; its close action dismisses it sooner


def announce_finished_downloads(manager: DownloadManager) -> None:
    """Call while a page builds: from now until the page closes, each finished download shows
    "Downloaded <repo id>" with Chat and Create profile."""
    notify = Notifier()

    def finished(state: DownloadState) -> None:
        notify(
            f"Downloaded {state.repo_id}",
            type="positive",
            timeout=NOTICE_MS,
            actions=finished_actions(state.repo_id),
        )

    ui.context.client.on_delete(manager.on_done(finished))


def finished_actions(repo_id: str) -> list[dict[str, Any]]:
    """Quasar notification actions: buttons rendered as links, so they work without a handler;
    the last one (no link) only dismisses."""
    return [
        {"label": "Chat", "icon": "forum", "href": chat_url(repo_id), "color": "white", "noCaps": True,
         "data-testid": "notice-chat"},
        {"label": "Create profile", "icon": "add", "href": new_profile_url(repo_id), "color": "white",
         "noCaps": True, "data-testid": "notice-create-profile"},
        {"icon": "close", "color": "white", "round": True, "flat": True, "aria-label": "Dismiss"},
    ]  # fmt: skip
