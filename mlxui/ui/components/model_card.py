"""One Hub search result. Capabilities are read lazily, the first time the card scrolls into view.

A card never shows download progress: while its model downloads, the card hides and the
Downloads tile at the top of the page shows it instead. When the download is done the card comes
back with a "Downloaded" badge and Chat in place of Download."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from nicegui import binding, ui
from nicegui.binding import BindableProperty

from mlxui.format import human_count
from mlxui.hub.capabilities import Capabilities
from mlxui.hub.search import HubModel
from mlxui.state import DownloadState
from mlxui.ui.components.capability_badges import CapabilityBadges
from mlxui.ui.components.chat_button import ChatButton
from mlxui.ui.testid import testid

HIDDEN_WHILE = ("queued", "downloading", "paused", "failed")

CapsLoader = Callable[[HubModel], Awaitable[tuple[Capabilities | None, str | None, str | None]]]


class ModelCard(ui.card):
    downloaded = BindableProperty()  # complete in the cache: a "Downloaded" badge and Chat, not Download

    def __init__(
        self,
        model: HubModel,
        *,
        load_caps: CapsLoader,
        on_download: Callable[[HubModel], Awaitable[None]],
        on_details: Callable[[HubModel], Awaitable[None]],
        download: DownloadState | None,
        is_local: bool,
    ) -> None:
        super().__init__()
        self.model = model
        self.caps: Capabilities | None = None
        self.fit: str | None = None
        self._load_caps = load_caps
        self._requested = False
        self.loaded = False  # capabilities (or the reason they are unknown) have arrived
        self.was_local = is_local
        self.downloaded = is_local
        self.classes("w-full gap-1 py-3").props("flat bordered")
        testid(self, f"model-card-{model.repo_id}")
        with self:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                with ui.column().classes("gap-0 min-w-0"):
                    ui.label(model.name).classes("text-base font-semibold truncate")
                    ui.label(model.author).classes("text-xs text-slate-500")
                ui.space()
                badge = testid(ui.badge("Downloaded", color="positive").props("outline"), "downloaded-badge")
                badge.bind_visibility_from(self, "downloaded")
                with ui.row().classes("gap-3 text-xs text-slate-500 items-center no-wrap"):
                    _stat("download", human_count(model.downloads), "downloads")
                    _stat("favorite_border", human_count(model.likes), "likes")
                    if model.last_modified:
                        _stat("update", relative_time(model.last_modified), "last updated")
                if model.gated:
                    ui.icon("lock", size="sm").classes("text-amber-500").tooltip(
                        "Gated: needs a Hugging Face token"
                    )
                testid(
                    ui.button("Details", on_click=lambda: on_details(model)).props("flat dense no-caps"),
                    "details",
                )
                button = ui.button(icon="download", on_click=lambda: on_download(model))
                button.props(f'round dense aria-label="Download {model.repo_id}"')
                testid(button.tooltip("Download"), f"download-{model.repo_id}")
                button.bind_visibility_from(self, "downloaded", lambda done: not done)
                chat = testid(ChatButton(model.repo_id).props("dense"), f"chat-{model.repo_id}")
                chat.bind_visibility_from(self, "downloaded")
            self.badges = CapabilityBadges(loading=True)
        if download is not None:
            self.follow(download)

    def follow(self, download: DownloadState) -> None:
        """Hide while the model downloads; come back when it is done (offering Chat at once) or
        cancelled."""
        self.bind_visibility_from(download, "state", lambda state: state not in HIDDEN_WHILE)
        binding.bind_from(
            self, "downloaded", download, "state", lambda state: state == "done" or self.was_local
        )

    async def request_caps(self) -> None:
        if self._requested:
            return
        self._requested = True
        caps, fit, error = await self._load_caps(self.model)
        self.caps, self.fit, self.loaded = caps, fit, True
        if not self.is_deleted:
            self.badges.show(caps, fit, error=error)

    def matches(self, flags: set[str]) -> bool:
        """Capability filters: unknown capabilities do not hide a card until they are known."""
        if not flags or self.caps is None:
            return True
        wanted = {
            "vision": self.caps.vision,
            "tools": self.caps.tools,
            "thinking": self.caps.thinking,
            "fits": self.fit == "fits",
        }
        return all(wanted.get(flag, True) for flag in flags)


def _stat(icon: str, text: str, tip: str) -> None:
    with ui.row().classes("gap-1 items-center no-wrap") as row:
        ui.icon(icon, size="14px")
        ui.label(text)
    row.tooltip(tip)


def relative_time(when: datetime) -> str:
    seconds = (datetime.now(UTC) - when.astimezone(UTC)).total_seconds()
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"
