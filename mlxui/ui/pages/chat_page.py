"""Chat page: the chosen model's chats on the left, the conversation and the composer on the right.

Any local model can be chosen (no profile needed); a stopped one starts on demand. The open chat is
in the URL (`/chat/ID`), so reload, back and links reopen it; `/chat` opens the last chat and
`/chat?server=NAME` a new one with that model. Replies go through mlxui's own gateway, stream into
the page throttled, and are saved as they arrive: the user's message before sending, the reply when
it completes, stops or fails."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from nicegui import background_tasks, ui

from mlxui.chat.store import ChatInfo, ChatStoreError, MessageInfo
from mlxui.hub.capabilities import Capabilities, read_local_capabilities
from mlxui.servers.model_defaults import display_name, short_name
from mlxui.servers.peers import Peer
from mlxui.servers.process import ServerError
from mlxui.servers.profiles import resolve_model
from mlxui.servers.state import RUNNING_STATES, ServerState
from mlxui.ui.autoscroll import AUTOSCROLL_JS
from mlxui.ui.components.chat_message import ChatMessage
from mlxui.ui.components.chat_settings import edit_chat_settings
from mlxui.ui.components.chat_sidebar import ChatSidebar
from mlxui.ui.components.chat_transfer_menu import ChatTransferMenu
from mlxui.ui.components.composer import Composer
from mlxui.ui.components.model_picker import ModelPicker
from mlxui.ui.frame import frame
from mlxui.ui.keyboard import closes_on_escape
from mlxui.ui.notifier import Notifier
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services


async def build(services: Services, *, server: str = "", chat: int | None = None) -> None:
    page = ChatPage(services)
    await page.build(server or None, chat)


# Back and forward between chats: the page is built from its URL, so build it again.
POPSTATE_JS = "window.addEventListener('popstate', () => window.location.reload());"
CONTINUE = "Continue."  # what the Continue button sends after a stopped reply
NARROW_PX = 1024  # below it the sidebar is a drawer over the chat (Quasar's drawer breakpoint)
DOCK_CSS = ".composer-dock { background: #fff } .body--dark .composer-dock { background: var(--q-dark-page) }"


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
        supervisor = self.services.supervisor
        # Beside the chat from 1024 px; below, a drawer over it (value None: Quasar decides by width)
        with ui.left_drawer(value=None, bordered=True).props("width=300") as self.drawer:
            self.sidebar = ChatSidebar(self.store, on_open=self._open_from_list, on_new=self.new_chat,
                                       on_deleted=self._deleted)  # fmt: skip
        closes_on_escape(self.drawer)
        with frame(self.services, "/chat"):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                testid(ui.button(icon="menu", on_click=self.drawer.toggle).props('flat round aria-label="Conversations"'),
                       "conversations").tooltip("Conversations")  # fmt: skip
                self.picker = ModelPicker(supervisor, on_pick=self.pick_model, peers=self.services.peers)
                self.title = testid(ui.label("Chat").classes("text-xl font-semibold truncate"), "page-title")
                ui.space()
                self.settings_button = testid(ui.button(icon="tune", on_click=self._settings)
                                              .props('flat round aria-label="Chat settings"'), "chat-settings")  # fmt: skip
                ChatTransferMenu(self.store, current=lambda: self.chat_id, on_imported=self.open_chat,
                                 profile=lambda: self._owner(self.server or "")[0])  # fmt: skip
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
        ui.run_javascript(POPSTATE_JS)
        if chat_id is not None:
            await self.open_chat(chat_id, push=False)
        elif server is not None:
            found = await supervisor.lookup(server)
            if found is None and self._peer(server) is not None:
                await self.pick_model(server)
            elif found is None:
                ui.notify(f"There is no model or profile named {server!r} on this machine.", type="warning")
                await self.select_server(None)
            else:
                await self.pick_model(found.name)
        elif (last := await self.store.last_chat()) is not None:
            await self.open_chat(last.id, push=False)
        else:
            running = [s.name for s in supervisor.fleet() if s.state in RUNNING_STATES]
            await self.select_server(running[0] if running else None)

    # ----- model and chat selection ---------------------------------------------------------------------
    async def pick_model(self, name: str) -> None:
        """The user chose a model: a chat whose own model is gone continues with it; otherwise its
        chats show on the left and a new conversation begins. A stopped model starts loading now."""
        if self.chat_id is not None and not self._known(self.server):
            profile, model = self._owner(name)
            await self.store.set_server(self.chat_id, profile, model=model)
            await self._use_server(name)
            await self.sidebar.refresh()
        else:
            await self.select_server(name)
        managed = self.services.supervisor.get(name)
        if managed is not None and managed.state in (ServerState.STOPPED, ServerState.CRASHED):
            await self._start_server(name)

    async def select_server(self, name: str | None) -> None:
        """Scope the page to `name` (a server's name): its chats, a new empty conversation."""
        await self._use_server(name)
        self.chat_id = None
        self.sidebar.current = None
        await self.sidebar.refresh()
        self._show_empty()

    async def _use_server(self, name: str | None) -> None:
        self.server = name
        managed = self.services.supervisor.get(name) if name else None
        # A chat's model that is gone is never a profile (deleting one clears its chats' link).
        self.sidebar.set_scope(name, implicit=managed is None or managed.profile.implicit)
        self.picker.set_value(name)
        self.caps = None
        if managed is not None:
            folder = resolve_model(managed.profile.model, self.services.config.hf_cache)
            if folder is not None:
                self.caps = await asyncio.to_thread(read_local_capabilities, folder)
        vision = bool(self.caps and self.caps.vision) or self.services.peers.capable(name, "vision")
        self.composer.set_vision(
            vision, "" if vision else "Images need a vision model; this model cannot see."
        )
        self._show_banner()

    def _owner(self, name: str) -> tuple[str | None, str | None]:
        """(profile, model) for a chat with the server `name` (a peer's model: no profile)."""
        managed = self.services.supervisor.get(name)
        if managed is not None and managed.profile.implicit:
            return None, managed.profile.model
        return (None, name) if managed is None and self._peer(name) else (name, None)

    def _peer(self, name: str | None) -> Peer | None:
        """The other mlxui machine whose model `name` is (none when a local model has the name)."""
        hit = self.services.peers.find(name) if name and self.services.supervisor.get(name) is None else None
        return hit[0] if hit else None

    def _known(self, name: str | None) -> bool:
        return bool(name) and (
            self.services.supervisor.get(name or "") is not None or self._peer(name) is not None
        )

    def _show_banner(self) -> None:
        managed = self.services.supervisor.get(self.server) if self.server else None
        self.banner.clear()
        if (peer := self._peer(self.server)) is not None:  # another machine's model: say when it is down
            with self.banner:
                testid(
                    ui.label().bind_text_from(peer, "status", lambda s: f"{peer.name} is {s}"), "peer-note"
                )
            self.banner.bind_visibility_from(peer, "up", lambda up: not up)
            return
        if managed is None:
            self.banner.set_visibility(self.server is not None)
            with self.banner:  # a chat whose model is gone: readable, and continued with another
                testid(ui.label(f"The model {self.server} is not on this machine any more. Choose another "
                                "model above to continue this chat."), "model-gone")  # fmt: skip
            return
        with self.banner:
            label = ui.label()
            label.bind_text_from(managed, "state", lambda s: _server_note(display_name(managed.profile), s))
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
        if not self._known(self.server):
            ui.notify("Choose a model first.", type="warning")
            return
        chat = await self._create_chat()
        await self.open_chat(chat.id)

    async def _create_chat(self) -> ChatInfo:
        profile, model = self._owner(self.server or "")
        return await self.store.create_chat(profile, model=model)

    async def open_chat(self, chat_id: int, *, push: bool = True) -> None:
        try:
            chat = await self.store.get_chat(chat_id)
        except ChatStoreError as exc:
            ui.notify(exc.message, type="negative")
            if self.server is None:
                await self.select_server(None)
            return
        if chat.server != self.server:
            await self._use_server(chat.server)
        if push and chat_id != self.chat_id:
            ui.navigate.history.push(f"/chat/{chat.id}")
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
            managed = self.services.supervisor.get(self.server) if self.server else None
            shown = display_name(managed.profile) if managed else short_name(self.server or "")
            text = (
                f"New conversation with {shown}. Write a message below."
                if self._known(self.server)
                else "Choose a model above, then write a message."
            )
            testid(ui.label(text).classes("text-slate-500"), "chat-empty")

    # ----- sending, streaming, stopping ---------------------------------------------------------------------
    async def send(self, text: str, attachments: list[dict[str, Any]]) -> None:
        if not self._known(self.server):
            ui.notify("Choose a model first.", type="warning")
            return
        if self.chat_id is None:
            chat = await self._create_chat()
            self.chat_id = self.sidebar.current = chat.id
            ui.navigate.history.replace(f"/chat/{chat.id}")
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
        name = display_name(managed.profile) if managed is not None else self.server
        view.waiting(f"Loading {name}…" if loading else "Waiting for the first token…")
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


def _server_note(name: str, state: ServerState) -> str:
    if state in (ServerState.STARTING, ServerState.LOADING):
        return f"{name} is loading its model…"
    if state in (ServerState.FAILED, ServerState.CRASHED):
        return f"{name} is {state}. Sending a message tries to start it again."
    return f"{name} is {state}. It starts when you send a message."
