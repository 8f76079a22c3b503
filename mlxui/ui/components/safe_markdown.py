"""Markdown for text we did not write (model output, model cards, chat titles).

Three layers, so no one of them has to be perfect:
1. raw HTML in the source is escaped before rendering (`<script>` shows up as text);
2. the rendered HTML goes through nh3 (the Ammonia sanitizer) with a scheme allowlist, so links
   such as `javascript&colon;...` or `data:` never leave the server as live `href`s;
3. a remote image becomes a link the user can click, never an `<img>` the browser fetches on its
   own: a prompt injection could otherwise leak chat text in the image's URL on every render.
   Images inside the page (data: and blob: URLs) stay images. The page's CSP (`img-src 'self' data:
   blob:`) backs this up, and DOMPurify in the browser stays on.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any
from urllib.parse import urlsplit

import markdown2
import nh3
from nicegui import ui

EXTRAS = ("fenced-code-blocks", "tables", "cuddled-lists", "strike", "code-friendly")
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
INLINE_IMAGE_PREFIXES = ("data:image/", "blob:")
REMOTE_IMAGE_CLASS = "mlxui-remote-image"
_ALLOWED_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "a": {"href", "title", "class", "target"},
    "img": {"src", "alt", "title"},
    "code": {"class"},  # fenced code's language, for highlighting
    "div": {"class"},
    "span": {"class"},
}
_IMG = re.compile(r"<img\b([^>]*)>")
_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


@functools.lru_cache(maxsize=512)
def render_safe_markdown(source: str, hard_breaks: bool = False) -> str:
    """Markdown -> HTML that runs no script, links only to http(s)/mailto and loads no remote image.

    `hard_breaks` keeps every line break (what a person typed), where Markdown would join lines."""
    extras: dict[str, Any] = dict.fromkeys(EXTRAS)
    if hard_breaks:
        extras["breaks"] = {"on_newline": True}
    rendered = markdown2.markdown(source, extras=extras, safe_mode="escape")
    clean = nh3.clean(
        rendered,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=set(LINK_SCHEMES | {"data", "blob"}),  # data:/blob: pass for images; see _keep
        attribute_filter=_keep,
        link_rel="noopener noreferrer",
    )
    return _IMG.sub(_image_or_link, clean)


def _keep(tag: str, attribute: str, value: str) -> str | None:
    """nh3's per-attribute check: `href`s with only allowed schemes; `src` of an image as is (the
    remote ones are turned into links afterwards)."""
    if attribute == "href":
        scheme = urlsplit(value.strip()).scheme.lower()
        return value if scheme in LINK_SCHEMES or scheme == "" else None
    if attribute == "target":
        return "_blank"
    if attribute == "src" and tag == "img":
        scheme = urlsplit(value.strip()).scheme.lower()
        return value if scheme in ("http", "https") or value.startswith(INLINE_IMAGE_PREFIXES) else None
    return value


def _image_or_link(match: re.Match[str]) -> str:
    """nh3 serialises attributes as name="escaped value", so they can be read back exactly."""
    attrs = {name: html.unescape(value) for name, value in _ATTR.findall(match[1])}
    src = attrs.get("src", "")
    if src.startswith(INLINE_IMAGE_PREFIXES):
        return match[0]
    if not src:
        return ""
    label = attrs.get("alt") or "image"
    host = urlsplit(src).hostname or "?"
    return (
        f'<a href="{html.escape(src)}" class="{REMOTE_IMAGE_CLASS}" target="_blank" rel="noopener noreferrer"'
        f' title="Opens {html.escape(host)} in a new tab">image: {html.escape(label)} ({html.escape(host)})</a>'
    )


class SafeMarkdown(ui.markdown):
    def __init__(self, content: str = "", *, hard_breaks: bool = False) -> None:
        self.hard_breaks = hard_breaks  # read by the first render, which the constructor triggers
        super().__init__(content, sanitize=True)

    def _handle_content_change(self, content: str) -> None:
        html_text = render_safe_markdown(content, self.hard_breaks)
        if self._props.get("innerHTML") != html_text:
            self._props["innerHTML"] = html_text
