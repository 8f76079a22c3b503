"""The chat sidebar: New chat, and the chats of the chosen model (or all chats: the "All" filter),
with search, rename, pin and delete. The list is rebuilt when chats change (created, renamed,
deleted, answered) or the scope changes, never on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nicegui import ui

from mlxui.chat.store import ChatInfo, ChatStore, ChatStoreError
from mlxui.servers.model_defaults import short_name
from mlxui.ui.components.model_card import relative_time
from mlxui.ui.testid import testid

DEBOUNCE_S = 0.3


class ChatSidebar(ui.column):
    def __init__(
        self,
        store: ChatStore,
        *,
        on_open: Callable[[int], Awaitable[None]],
        on_new: Callable[[], Awaitable[None]],
        on_deleted: Callable[[int], Awaitable[None]],
    ) -> None:
        super().__init__()
        self.store, self.on_open, self.on_deleted = store, on_open, on_deleted
        self.server: str | None = None  # the chosen model's server name
        self.implicit = False  # a model without a profile: its chats are found by model name
        self.label = ""  # what the scope toggle calls the chosen model
        self.current: int | None = None
        self._typed = 0
        self.classes("w-full gap-2 p-2")
        with self:
            testid(ui.button("New chat", icon="add", on_click=on_new).classes("w-full"), "new-chat")
            self.scope = testid(
                ui.toggle({"model": "This model", "all": "All"}, value="model", on_change=self.refresh)
                .props("dense spread no-caps").classes("w-full"),
                "chat-scope",
            )  # fmt: skip
            self.search = testid(
                ui.input(placeholder="Search chats").props("dense outlined clearable").classes("w-full"),
                "chat-search",
            )
            self.search.on_value_change(self._typed_search)
            self.list = testid(ui.column().classes("w-full gap-1"), "chat-list")

    @property
    def showing_all(self) -> bool:
        return self.scope.value == "all" or self.server is None

    def set_scope(self, server: str | None, *, implicit: bool) -> None:
        """Show the chats of `server` (unless "All" is on); call `refresh` after."""
        self.server, self.implicit = server, implicit

    async def refresh(self) -> None:
        text = (self.search.value or "").strip()
        if self.showing_all:
            scope: dict[str, str | None] = {}
        elif self.implicit:
            scope = {"model": self.server}
        else:
            scope = {"profile": self.server}
        chats = await self.store.search_chats(text, **scope) if text else await self.store.list_chats(**scope)
        self.list.clear()
        with self.list:
            if not chats:
                ui.label("No chats yet." if not text else "No chat matches.").classes(
                    "text-sm text-slate-500"
                )
            for chat in chats:
                self._row(chat)

    def _row(self, chat: ChatInfo) -> None:
        selected = "bg-indigo-500/20" if chat.id == self.current else ""
        with testid(ui.row(), f"chat-row-{chat.id}").classes(
            f"w-full items-center gap-1 no-wrap rounded px-2 py-1 cursor-pointer hover:bg-slate-500/10 {selected} "
            "focus-visible:outline focus-visible:outline-2 focus-visible:outline-indigo-500"
        ) as row:
            row.props("tabindex=0" + (' aria-current="true"' if chat.id == self.current else ""))
            if chat.pinned:
                ui.icon("push_pin", size="14px").classes("text-slate-400")
            with ui.column().classes("gap-0 min-w-0 grow"):
                ui.label(chat.title).classes("text-sm truncate")  # plain text: titles never become HTML
                when = relative_time(chat.updated_at)
                if self.showing_all and chat.server:  # which model, when the list mixes them
                    when = f"{short_name(chat.server)} · {when}"
                ui.label(when).classes("text-xs text-slate-500 truncate")
            with (
                ui.button(icon="more_vert")
                .props('flat round dense size=sm aria-label="Chat actions"')
                .on("click.stop", lambda: None)
            ):
                with ui.menu():
                    ui.menu_item("Rename", on_click=lambda c=chat: self._rename(c))
                    ui.menu_item("Unpin" if chat.pinned else "Pin", on_click=lambda c=chat: self._pin(c))
                    testid(
                        ui.menu_item("Delete", on_click=lambda c=chat: self._delete(c)),
                        f"delete-chat-{chat.id}",
                    )
        row.on("click", lambda c=chat: self.on_open(c.id))
        row.on("keydown.enter.self", lambda c=chat: self.on_open(c.id))  # the row itself, not its menu button

    async def _typed_search(self) -> None:
        self._typed += 1
        mine = self._typed
        await asyncio.sleep(DEBOUNCE_S)
        if mine == self._typed:
            await self.refresh()

    async def _rename(self, chat: ChatInfo) -> None:
        with ui.dialog() as dialog, ui.card():
            field = testid(
                ui.input("Title", value=chat.title).props("autofocus outlined dense"), "rename-input"
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")
                testid(ui.button("Rename", on_click=lambda: dialog.submit(field.value)), "rename-save")
        title = await dialog
        if title:
            try:
                await self.store.rename_chat(chat.id, title)
            except ChatStoreError as exc:
                ui.notify(exc.message, type="negative")
            await self.refresh()

    async def _pin(self, chat: ChatInfo) -> None:
        await self.store.set_pinned(chat.id, not chat.pinned)
        await self.refresh()

    async def _delete(self, chat: ChatInfo) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label(f"Delete the chat “{chat.title}” and all its messages?")
            with ui.row().classes("w-full justify-end"):
                ui.button("Keep", on_click=lambda: dialog.submit(False)).props("flat")
                testid(
                    ui.button("Delete", color="negative", on_click=lambda: dialog.submit(True)),
                    "confirm-delete-chat",
                )
        if await dialog:
            await self.store.delete_chat(chat.id)
            await self.on_deleted(chat.id)
            await self.refresh()
