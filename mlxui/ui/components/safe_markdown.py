"""Markdown for text we did not write (model output, model cards, chat titles).

Raw HTML in the source is escaped before rendering, so `<script>` or `<img onerror=...>` shows up
as text; DOMPurify in the browser stays on as a second layer.
"""

from __future__ import annotations

import functools

import markdown2
from nicegui import ui

EXTRAS = ("fenced-code-blocks", "tables", "cuddled-lists", "strike", "code-friendly")


@functools.lru_cache(maxsize=512)
def render_safe_markdown(source: str) -> str:
    """Markdown -> HTML with every raw HTML tag escaped and no javascript: links."""
    html = markdown2.markdown(source, extras=list(EXTRAS), safe_mode="escape")
    return html.replace('href="javascript:', 'href="#blocked:')


class SafeMarkdown(ui.markdown):
    def __init__(self, content: str = "") -> None:
        super().__init__(content, sanitize=True)

    def _handle_content_change(self, content: str) -> None:
        html = render_safe_markdown(content)
        if self._props.get("innerHTML") != html:
            self._props["innerHTML"] = html
