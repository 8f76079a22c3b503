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

FLAG_TIPS = {
    "Vision": "Understands images: attach them in the chat.",
    "Audio": "Takes sound as input.",
    "Embeddings": "Turns text into vectors (embeddings) rather than writing replies.",
    "Tools": "Can call tools (functions) that a client offers it.",
    "Thinking": "Reasons before it answers; the chat shows the thinking in its own panel.",
}
FIT_TIPS = {
    "fits": "Its weights and a conversation of the default length fit in this machine's memory.",
    "tight": "It fits, but leaves little memory for other programs.",
    "wont_fit": "Its weights and a conversation need more memory than this machine has.",
}


def badge_tip(label: str, caps: Capabilities) -> str:
    """What a badge means, in a sentence (its tooltip)."""
    if label in FLAG_TIPS:
        return FLAG_TIPS[label]
    if label.endswith(" ctx") and caps.context_length:
        return f"Reads up to {caps.context_length:,} tokens of conversation at once (its context window)."
    if label == caps.parameters_label:
        how = (
            "estimated from the size of its files" if caps.parameters_estimated else "counted from its files"
        )
        return f"{label.lstrip('~')} parameters (weights), {how}."
    return f"Weights stored as {label} numbers: smaller and faster than 16-bit, a little less exact."


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
                badge = ui.badge(label, color=color).props("outline" if label not in FLAG_COLORS else "")
                testid(badge, "badge").tooltip(badge_tip(label, caps))
            if fit in FIT_LOOK:
                text, color, icon = FIT_LOOK[fit]
                with testid(ui.badge(color=color), "fit-badge").classes("gap-1") as badge:
                    ui.icon(icon, size="12px")
                    ui.label(text)
                badge.tooltip(FIT_TIPS[fit])
            elif fit is None and caps is not None:
                testid(ui.badge("fit n/a", color="grey").props("outline"), "fit-badge").tooltip(
                    "The weights' size is not known yet, so memory fit cannot be judged."
                )
