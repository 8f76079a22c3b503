"""Chat titles: made from the first message, or given by the user; one line either way."""

from __future__ import annotations

DEFAULT_TITLE = "New chat"
TITLE_CHARS = 60


def make_title(text: str, *, has_images: bool = False) -> str:
    """A chat title from its first message: one line, at most ~60 characters, cut at a word."""
    line = " ".join(text.split())
    if not line:
        return "Image" if has_images else DEFAULT_TITLE
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[:TITLE_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space >= TITLE_CHARS // 2 else cut).rstrip(" ,.;:-") + "…"


def clean_title(title: str) -> str:
    """A title as stored: whitespace folded, at most 200 characters, never empty."""
    return " ".join(title.split())[:200] or DEFAULT_TITLE
