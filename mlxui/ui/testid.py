"""Name an element for tests: a NiceGUI marker (user tests) and a data-testid (browser tests)."""

from __future__ import annotations

from typing import TypeVar

from nicegui import ui

E = TypeVar("E", bound=ui.element)


def testid(element: E, name: str) -> E:
    element.mark(name)
    element.props(f'data-testid="{name}"')
    return element
