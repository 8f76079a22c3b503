"""The Connect dialog: copy-paste set-ups for Claude Code, Codex, the OpenAI SDK, Ollama apps, Open
WebUI and curl, filled with this app's gateway address and the chosen model (ui/connect_snippets.py).

The stored gateway key never reaches the browser: the dialog says whether one is set and the
snippets say `<your key>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from mlxui.servers.model_defaults import display_name
from mlxui.ui.connect_snippets import KEY_PLACEHOLDER, Snippet, client_base_url, snippets
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services

DEFAULT_OLLAMA_PORT = 11434


class ConnectDialog:
    """A dialog built once per page; `open()` refreshes the model list and shows it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.codes: dict[str, ui.label] = {}
        self.shown: dict[str, str] = {}  # snippet key -> the code now shown (what Copy copies)
        with ui.dialog() as self.dialog, testid(ui.card(), "connect-dialog").classes("w-full max-w-3xl"):
            with ui.row().classes("w-full items-center no-wrap"):
                ui.label("Connect a tool").classes("text-lg font-semibold")
                ui.space()
                close = ui.button(icon="close", on_click=self.dialog.close)
                close.props('flat round dense aria-label="Close"')
            with ui.row().classes("w-full items-center gap-4"):
                self.model = testid(ui.select({}, label="Model", on_change=self._render), "connect-model")
                self.model.classes("min-w-64")
                with ui.column().classes("gap-0 text-sm"):
                    self.address = testid(ui.label().classes("font-mono"), "connect-address")
                    self.key_note = testid(
                        ui.label().classes("text-slate-600 dark:text-slate-300"), "connect-key"
                    )
            self.empty = ui.label("No models yet: download one on the Models page; <model> stands for it.")
            self.empty.classes("text-sm text-amber-700 dark:text-amber-300")
            self.ollama_note = ui.label().classes("text-xs text-slate-600 dark:text-slate-300")
            for snippet in snippets("", "", None):
                self._block(snippet)

    def _block(self, snippet: Snippet) -> None:
        with ui.column().classes("w-full gap-1"):
            with ui.row().classes("w-full items-center no-wrap"):
                ui.label(snippet.title).classes("font-semibold")
                ui.space()
                copy = ui.button(icon="content_copy", on_click=lambda key=snippet.key: self._copy(key))
                testid(copy.props(f'flat dense round size=sm aria-label="Copy the {snippet.title} set-up"'),
                       f"connect-copy-{snippet.key}").tooltip("Copy")  # fmt: skip
            ui.label(snippet.note).classes("text-xs text-slate-600 dark:text-slate-300")
            code = testid(ui.label(), f"connect-snippet-{snippet.key}")
            code.classes(
                "w-full font-mono text-xs whitespace-pre overflow-x-auto rounded p-2 "
                "bg-slate-100 text-slate-900 dark:bg-slate-800 dark:text-slate-100"
            )
            self.codes[snippet.key] = code

    def open(self, model: str | None = None) -> None:
        names = sorted(display_name(s.profile) for s in self.services.supervisor.fleet(every_model=True))
        self.model.set_options(names)
        chosen = model if model in names else (self.model.value if self.model.value in names else None)
        self.model.value = chosen or (names[0] if names else None)
        self.empty.set_visibility(not names)
        self._render()
        self.dialog.open()

    def _render(self) -> None:
        config = self.services.config
        base = client_base_url(config.host, config.port)
        ollama_url, note = self._ollama()
        self.address.text = f"Gateway: {base}/v1 (OpenAI, Anthropic, Responses)"
        if self.services.supervisor.settings.gateway_key:
            self.key_note.text = f"Key: •••••••• (set; type yours where {KEY_PLACEHOLDER} stands)"
        else:
            self.key_note.text = "Key: none, so any value works; set one in Settings"
        self.ollama_note.text = note
        for snippet in snippets(base, ollama_url, self.model.value):
            self.shown[snippet.key] = snippet.code
            self.codes[snippet.key].text = snippet.code

    def _ollama(self) -> tuple[str, str]:
        """The Ollama API's address, and a sentence when it does not listen now."""
        listener = self.services.ollama
        status = listener.status() if listener is not None else None
        if status is not None and status["url"]:
            return status["url"], ""
        host = client_base_url(self.services.config.host, DEFAULT_OLLAMA_PORT)
        port = status["port"] if status is not None and status["port"] else DEFAULT_OLLAMA_PORT
        url = host.rsplit(":", 1)[0] + f":{port}"
        said = listener.note if listener is not None else "The Ollama API is not set up."
        return url, said

    def _copy(self, key: str) -> None:
        ui.clipboard.write(self.shown.get(key, ""))
        ui.notify("Copied.")


def connect_button(services: Services) -> ui.button:
    """The header's Connect button with its dialog."""
    dialog = ConnectDialog(services)
    button = ui.button(on_click=lambda: dialog.open()).props(
        'flat no-caps color=white aria-label="Connect a tool"'
    )
    with button:
        ui.icon("cable", size="sm")
        ui.label("Connect").classes("ml-2 max-sm:hidden")
    button.tooltip("Set up Claude Code, Codex, an SDK or an app to use these models")
    return testid(button, "connect-open")
