"""The Chat page's export/import button: the open chat as Markdown or JSON, or a JSON export
brought back in as a new chat."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from nicegui import events, ui

from mlxui.chat.export import ChatImportError, export_chat, export_markdown, import_chat
from mlxui.chat.store import ChatStore


class ChatTransferMenu(ui.button):
    def __init__(
        self,
        store: ChatStore,
        *,
        current: Callable[[], int | None],
        profile: Callable[[], str | None],
        on_imported: Callable[[int], Awaitable[None]],
    ) -> None:
        """`current()` is the open chat's id; `profile()` the profile an import joins (None: none)."""
        super().__init__(icon="download")
        self.store, self.current, self.profile, self.on_imported = store, current, profile, on_imported
        self.props('flat round aria-label="Export or import"')
        with self, ui.menu():
            ui.menu_item("Export as Markdown", on_click=lambda: self._export("md"))
            ui.menu_item("Export as JSON", on_click=lambda: self._export("json"))
            ui.menu_item("Import JSON…", on_click=self._open_import)
        self.tooltip("Export or import")

    async def _export(self, fmt: str) -> None:
        chat_id = self.current()
        if chat_id is None:
            ui.notify("Open a chat to export it.", type="warning")
            return
        if fmt == "md":
            ui.download((await export_markdown(self.store, chat_id)).encode(), f"chat-{chat_id}.md")
        else:
            data = await export_chat(self.store, chat_id)
            ui.download(json.dumps(data, indent=2).encode(), f"chat-{chat_id}.json", "application/json")

    def _open_import(self) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label("Import a chat exported as JSON").classes("font-semibold")
            ui.upload(auto_upload=True, on_upload=lambda e: self._import(e, dialog)).props(
                "accept=.json flat bordered"
            )
        dialog.open()

    async def _import(self, event: events.UploadEventArguments, dialog: ui.dialog) -> None:
        dialog.close()
        try:
            data = json.loads((await event.file.read()).decode("utf-8"))
            chat = await import_chat(self.store, data, profile=self.profile())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            ui.notify(f"That file is not a chat export: {exc}", type="negative")
            return
        except ChatImportError as exc:
            ui.notify(f"Import failed: {exc.message}", type="negative", multi_line=True)
            return
        await self.on_imported(chat.id)
