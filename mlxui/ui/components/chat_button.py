"""The "Chat" action for a downloaded model: a link to the chat page with that model (a real
`href`, so it also opens in a new tab), offered by the Hub cards, the details drawer and the Local
list alike."""

from __future__ import annotations

from nicegui import ui

from mlxui.ui.links import chat_url


class ChatButton(ui.button):
    def __init__(self, model: str, *, label: str = "Chat") -> None:
        super().__init__(label, icon="forum", color="primary")
        self.props("no-caps unelevated")
        self.props["href"] = chat_url(model)
        self.tooltip(f"Chat with {model}")
