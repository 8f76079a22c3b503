"""Capability and memory-fit badges, shared by Hub cards, local rows and the detail drawer."""

from __future__ import annotations

from nicegui import ui

from mlxui.hub.capabilities import Capabilities
from mlxui.ui.testid import testid

FLAG_COLORS = {
    "Vision": "teal",
    "Audio": "cyan",
    "Embeddings": "blue-grey",
    "Tools": "orange",
    "Thinking": "purple",
}
FIT_LOOK = {
    "fits": ("Fits in memory", "positive", "check_circle"),
    "tight": ("Tight fit", "warning", "warning"),
    "wont_fit": ("Won't fit", "negative", "block"),
}


class CapabilityBadges(ui.row):
    """State in (capabilities + fit verdict), badges out."""

    def __init__(
        self, caps: Capabilities | None = None, fit: str | None = None, *, loading: bool = False
    ) -> None:
        super().__init__(wrap=True)
        self.classes("gap-1 items-center min-h-[22px]")
        self.show(caps, fit, loading=loading)

    def show(
        self, caps: Capabilities | None, fit: str | None, *, loading: bool = False, error: str | None = None
    ) -> None:
        self.clear()
        with self:
            if loading:
                ui.spinner(size="xs")
                ui.label("reading model files…").classes("text-xs text-slate-500")
                return
            if error:
                testid(ui.label(error).classes("text-xs text-amber-500"), "badges-error")
                return
            if caps is None:
                return
            for label in caps.badges():
                color = FLAG_COLORS.get(label, "grey-7")
                testid(
                    ui.badge(label, color=color).props("outline" if label not in FLAG_COLORS else ""), "badge"
                )
            if fit in FIT_LOOK:
                text, color, icon = FIT_LOOK[fit]
                with testid(ui.badge(color=color), "fit-badge").classes("gap-1"):
                    ui.icon(icon, size="12px")
                    ui.label(text)
            elif fit is None and caps is not None:
                testid(ui.badge("fit n/a", color="grey").props("outline"), "fit-badge").tooltip(
                    "The weights' size is not known yet, so memory fit cannot be judged."
                )
