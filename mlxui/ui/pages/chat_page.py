"""Chat page: a server's chats on the left, the conversation and the composer on the right.

Replies go through mlxui's own gateway (so a stopped server starts on demand), stream into the
page throttled, and are saved as they arrive: the user's message before sending, the reply when
it completes, stops or fails."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from nicegui import background_tasks, events, ui

from mlxui.chat.export import ChatImportError, export_chat, export_markdown, import_chat
from mlxui.chat.store import ChatStoreError, MessageInfo
from mlxui.hub.capabilities import Capabilities, read_local_capabilities
from mlxui.servers.process import ServerError
from mlxui.servers.profiles import resolve_model
from mlxui.servers.state import ServerState
from mlxui.ui.components.chat_message import ChatMessage
from mlxui.ui.components.chat_settings import edit_chat_settings
from mlxui.ui.components.chat_sidebar import ChatSidebar
from mlxui.ui.components.composer import Composer
from mlxui.ui.frame import frame
from mlxui.ui.keyboard import closes_on_escape
from mlxui.ui.notifier import Notifier
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services


async def build(services: Services, *, server: str = "", chat: int | None = None) -> None:
    page = ChatPage(services)
    await page.build(server or None, chat)


CONTINUE = "Continue."  # what the Continue button sends after a stopped reply
NARROW_PX = 1024  # below it the sidebar is a drawer over the chat (Quasar's drawer breakpoint)
DOCK_CSS = ".composer-dock { background: #fff } .body--dark .composer-dock { background: var(--q-dark-page) }"
# Keep the newest text in view, as chat apps do: follow the bottom while a reply streams, unless the
# user has scrolled up to read; a new message (or another chat) brings the bottom back. All in the
# browser: the server sends nothing extra.
AUTOSCROLL_JS = """
(() => {
  const box = getHtmlElement(%(box)s);
  const bottom = () => window.scrollTo(0, document.documentElement.scrollHeight);
  const nearBottom = () => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 96;
  let follow = true, lastY = window.scrollY;
  window.addEventListener('scroll', () => {  // only the user scrolls up; growing text never does
    if (window.scrollY < lastY - 2) follow = false;
    else if (nearBottom()) follow = true;
    lastY = window.scrollY;
  }, {passive: true});
  new MutationObserver((changes) => {
    if (changes.some((c) => c.target === box && c.type === 'childList')) follow = true;
    if (follow) bottom();
  }).observe(box, {childList: true, subtree: true, characterData: true});
  bottom();
  box.dataset.autoscroll = '1';
})();
"""


class ChatPage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.chats
        self.chat_id: int | None = None
        self.server: str | None = None
        self.caps: Capabilities | None = None
        self.reply_task: asyncio.Task | None = None
        self.views: list[ChatMessage] = []

    async def build(self, server: str | None, chat_id: int | None) -> None:
        servers = {name: name for name in self.services.supervisor.servers}
        # Beside the chat from 1024 px; below, a drawer over it (value None: Quasar decides by width)
        with ui.left_drawer(value=None, bordered=True).props("width=300") as self.drawer:
            self.sidebar = ChatSidebar(self.store, servers, on_server=self.select_server, on_open=self._open_from_list,
                                       on_new=self.new_chat, on_deleted=self._deleted)  # fmt: skip
        closes_on_escape(self.drawer)
        with frame(self.services, "/chat"):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                testid(ui.button(icon="menu", on_click=self.drawer.toggle).props('flat round aria-label="Conversations"'),
                       "conversations").tooltip("Conversations")  # fmt: skip
                self.title = testid(ui.label("Chat").classes("text-2xl font-semibold truncate"), "page-title")
                ui.space()
                self.settings_button = testid(ui.button(icon="tune", on_click=self._settings)
                                              .props('flat round aria-label="Chat settings"'), "chat-settings")  # fmt: skip
                with ui.button(icon="download").props(
                    'flat round aria-label="Export or import"'
                ) as export_button:
                    with ui.menu():
                        ui.menu_item("Export as Markdown", on_click=lambda: self._export("md"))
                        ui.menu_item("Export as JSON", on_click=lambda: self._export("json"))
                        ui.menu_item("Import JSON…", on_click=self._open_import)
                export_button.tooltip("Export or import")
            self.banner = testid(
                ui.row().classes("w-full items-center gap-2 p-2 rounded bg-amber-500/15"), "server-banner"
            )
            self.banner.set_visibility(False)
            self.messages = testid(ui.column().classes("w-full gap-3 pb-4"), "messages")
            ui.run_javascript(AUTOSCROLL_JS % {"box": self.messages.id})
            # the dock fills the strip under the composer too, so scrolled text never shows below it
            ui.add_css(DOCK_CSS)
            with ui.element("div").classes("w-full sticky bottom-0 z-10 pb-8 composer-dock"):
                self.composer = Composer(on_send=self.send, on_stop=self.stop, attach=self.store.attach_image,
                                         thumbnail_url=lambda a: f"/chat-images/{a['path']}")  # fmt: skip
        if server in servers:
            await self.select_server(server)
            self.sidebar.server_select.value = server  # its change event finds the server already selected
        else:
            await self.sidebar.refresh()
            self._show_empty()
        if chat_id is not None:
            await self.open_chat(chat_id)

    # ----- server and chat selection --------------------------------------------------------------------
    async def select_server(self, name: str | None) -> None:
        if name == self.server and name is not None:
            return
        self.server = name
        self.sidebar.server = name
        self.chat_id = None
        self.sidebar.current = None
        managed = self.services.supervisor.get(name) if name else None
        self.caps = None
        if managed is not None:
            folder = resolve_model(managed.profile.model, self.services.config.hf_cache)
            if folder is not None:
                self.caps = await asyncio.to_thread(read_local_capabilities, folder)
        vision = bool(self.caps and self.caps.vision)
        self.composer.set_vision(
            vision, "" if vision else "Images need a vision model; this server's model cannot see."
        )
        self._show_banner()
        await self.sidebar.refresh()
        self._show_empty()

    def _show_banner(self) -> None:
        managed = self.services.supervisor.get(self.server) if self.server else None
        self.banner.clear()
        if managed is None:
            self.banner.set_visibility(False)
            return
        with self.banner:
            label = ui.label()
            label.bind_text_from(managed, "state", lambda s: _server_note(managed.name, s))
            start = testid(
                ui.button("Start now", on_click=lambda: self._start_server(managed.name)), "start-now"
            )
            start.props("flat dense")
            start.bind_visibility_from(managed, "state", lambda s: s in (ServerState.STOPPED, ServerState.FAILED,
                                                                         ServerState.CRASHED))  # fmt: skip
        self.banner.bind_visibility_from(managed, "state", lambda s: s != ServerState.READY)

    async def _start_server(self, name: str) -> None:
        notify = Notifier()

        async def run() -> None:
            try:
                await self.services.supervisor.start(name)
            except ServerError as exc:  # the banner shows "failed" too; say why where the user looks
                notify(
                    f"{name} could not start: {str(exc).splitlines()[0]}", type="negative", multi_line=True
                )

        background_tasks.create(run(), name=f"start {name}")

    async def new_chat(self) -> None:
        if not self.server:
            ui.notify("Choose a server first.", type="warning")
            return
        chat = await self.store.create_chat(self.server)
        await self.open_chat(chat.id)

    async def open_chat(self, chat_id: int) -> None:
        try:
            chat = await self.store.get_chat(chat_id)
        except ChatStoreError as exc:
            ui.notify(exc.message, type="negative")
            return
        if chat.profile_name and chat.profile_name != self.server:
            await self.select_server(chat.profile_name)
            self.sidebar.server_select.value = chat.profile_name
        self.chat_id = chat.id
        self.sidebar.current = chat.id
        self.title.text = chat.title
        self.messages.clear()
        self.views = []
        for message in await self.store.messages(chat.id):
            self._add_view(message)
        self._add_actions()
        await self.sidebar.refresh()

    async def _open_from_list(self, chat_id: int) -> None:
        await self.open_chat(chat_id)
        if await ui.run_javascript("window.innerWidth") < NARROW_PX:  # the drawer covers the chat: show it
            self.drawer.hide()

    async def _deleted(self, chat_id: int) -> None:
        if chat_id == self.chat_id:
            self.chat_id = None
            self._show_empty()

    def _show_empty(self) -> None:
        self.messages.clear()
        self.views = []
        self.title.text = "Chat"
        with self.messages:
            text = (
                "Choose a server on the left, then write a message."
                if not self.server
                else (f"New conversation with {self.server}. Write a message below.")
            )
            testid(ui.label(text).classes("text-slate-500"), "chat-empty")

    # ----- sending, streaming, stopping ---------------------------------------------------------------------
    async def send(self, text: str, attachments: list[dict[str, Any]]) -> None:
        if not self.server:
            ui.notify("Choose a server first.", type="warning")
            return
        if self.chat_id is None:
            chat = await self.store.create_chat(self.server)
            self.chat_id = self.sidebar.current = chat.id
            self.messages.clear()
        message = await self.store.add_user_message(self.chat_id, text, attachments)  # saved before sending
        self._add_view(message)
        self.title.text = (await self.store.get_chat(self.chat_id)).title
        self._start_reply()

    def _start_reply(self) -> None:
        with self.messages:
            view = ChatMessage(None, role="assistant", images_url=lambda a: f"/chat-images/{a['path']}")
        managed = self.services.supervisor.get(self.server or "")
        loading = managed is not None and managed.state != ServerState.READY
        view.waiting(f"Loading the model on {self.server}…" if loading else "Waiting for the first token…")
        self.views.append(view)
        self.composer.set_busy(True)
        self.reply_task = background_tasks.create(self._reply(view), name=f"chat {self.chat_id}")

    async def _reply(self, view: ChatMessage) -> None:
        chat_id = self.chat_id
        assert chat_id is not None
        api_key = self.services.supervisor.settings.gateway_key
        try:
            final = await self.store.reply(
                chat_id, base_url=self.services.config.base_url, api_key=api_key,
                on_update=lambda h: view.stream(h.reasoning, h.content),
            )  # fmt: skip
        except asyncio.CancelledError:  # Stop: the reply is saved as stopped; offer what comes next at once
            final = (await self.store.messages(chat_id))[-1]
            view.show_final(final)
            self.reply_task = None
            self._add_actions()
            await self.sidebar.refresh()  # a chat begun with this reply is listed now
            raise
        except ChatStoreError as exc:
            ui.notify(exc.message, type="negative")
            view.delete()
            return
        finally:
            self.composer.set_busy(False)
            self.reply_task = None
        view.show_final(final)
        self._add_actions()
        await self.sidebar.refresh()

    async def stop(self) -> None:
        if self.reply_task is not None:
            self.reply_task.cancel()  # closes the stream: the gateway and the server stop generating

    def _add_view(self, message: MessageInfo) -> None:
        with self.messages:
            self.views.append(ChatMessage(message, images_url=lambda a: f"/chat-images/{a['path']}"))

    def _add_actions(self) -> None:
        for view in self.views:
            view.actions.clear()
        last_assistant = next((v for v in reversed(self.views) if v.role == "assistant"), None)
        last_user = next((v for v in reversed(self.views) if v.role == "user"), None)
        if last_assistant is not None:
            with last_assistant.actions:
                label = "Retry" if last_assistant.error.visible else "Regenerate"
                testid(ui.button(label, icon="refresh", on_click=self._regenerate).props("flat dense no-caps size=sm"),
                       "regenerate")  # fmt: skip
                if last_assistant.stopped:  # the model reads its cut-off reply and goes on
                    testid(ui.button("Continue", icon="play_arrow", on_click=self._continue)
                           .props("flat dense no-caps size=sm"), "continue")  # fmt: skip
        if last_user is not None:
            with last_user.actions:
                testid(ui.button("Edit", icon="edit", on_click=self._edit_last).props("flat dense no-caps size=sm"),
                       "edit-last")  # fmt: skip

    async def _regenerate(self) -> None:
        if self.chat_id is None or self.reply_task is not None:
            return
        await self.store.regenerate(self.chat_id)
        if self.views and self.views[-1].role == "assistant":
            self.views.pop().delete()
        self._start_reply()

    async def _continue(self) -> None:
        if self.reply_task is None:
            await self.send(CONTINUE, [])

    async def _edit_last(self) -> None:
        last_user = next((v for v in reversed(self.views) if v.role == "user"), None)
        if self.chat_id is None or last_user is None or self.reply_task is not None:
            return
        with ui.dialog() as dialog, ui.card().classes("w-[600px] max-w-full"):
            messages = await self.store.messages(self.chat_id)
            current = next(m for m in reversed(messages) if m.role == "user")
            field = testid(
                ui.textarea(value=current.content).props("outlined autogrow").classes("w-full"), "edit-text"
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")
                testid(ui.button("Send", on_click=lambda: dialog.submit(field.value)), "edit-send")
        text = await dialog
        if text:
            await self.store.edit_last_user_message(self.chat_id, text)
            await self.open_chat(self.chat_id)
            self._start_reply()

    # ----- settings, export, import ---------------------------------------------------------------------------
    async def _settings(self) -> None:
        if self.chat_id is None:
            ui.notify("Open or start a chat first.", type="warning")
            return
        chat = await self.store.get_chat(self.chat_id)
        await edit_chat_settings(self.store, chat, thinking_supported=bool(self.caps and self.caps.thinking))

    async def _export(self, fmt: str) -> None:
        if self.chat_id is None:
            ui.notify("Open a chat to export it.", type="warning")
            return
        if fmt == "md":
            ui.download((await export_markdown(self.store, self.chat_id)).encode(), f"chat-{self.chat_id}.md")
        else:
            data = await export_chat(self.store, self.chat_id)
            ui.download(json.dumps(data, indent=2).encode(), f"chat-{self.chat_id}.json", "application/json")

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
            chat = await import_chat(self.store, data, profile=self.server)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            ui.notify(f"That file is not a chat export: {exc}", type="negative")
            return
        except ChatImportError as exc:
            ui.notify(f"Import failed: {exc.message}", type="negative", multi_line=True)
            return
        await self.open_chat(chat.id)


def _server_note(name: str, state: ServerState) -> str:
    if state in (ServerState.STARTING, ServerState.LOADING):
        return f"{name} is loading its model…"
    if state in (ServerState.FAILED, ServerState.CRASHED):
        return f"{name} is {state}. Sending a message tries to start it again."
    return f"{name} is {state}. It starts when you send a message."
