"""Servers page: pick a profile and start it; running servers as live tiles; the rest listed below.

Sections are rebuilt only when a server joins or leaves them (supervisor events); numbers inside a
tile move through bindings to the process-wide sampler."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from nicegui import background_tasks, events, ui

from mlxui.hub.capabilities import read_local_capabilities
from mlxui.hub.local import list_local_models
from mlxui.hub.memory import fit_on_this_machine
from mlxui.servers.model_defaults import display_name
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.profiles import Profile, ProfileError, resolve_model
from mlxui.servers.scheduler import AdmissionRefused
from mlxui.servers.state import RUNNING_STATES, ServerEvent
from mlxui.ui.components.empty_state import EmptyState
from mlxui.ui.components.log_viewer import LogViewer
from mlxui.ui.components.memory_summary import MemorySummary
from mlxui.ui.components.profile_editor import ProfileEditor
from mlxui.ui.components.server_tile import ServerTile
from mlxui.ui.components.state_chip import StateChip
from mlxui.ui.frame import frame
from mlxui.ui.notifier import Notifier
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services


async def build(services: Services, *, model: str = "") -> None:
    page = ServersPage(services)
    await page.build(model)


class ServersPage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.supervisor = services.supervisor
        self._running_names: list[str] | None = None
        self._other_names: list[str] | None = None

    async def build(self, model: str) -> None:
        models = await list_local_models(self.services.config.hf_cache)
        self.editor = ProfileEditor(
            self.supervisor.profiles,
            models,
            on_saved=self._saved,
            taken_names=lambda: self.supervisor.servers,
        )
        self.editor.default_ttl = self.supervisor.settings.default_idle_ttl
        with frame(self.services, "/servers") as content:
            self.content = content  # dialogs opened by background starts go here
            with ui.row().classes("w-full items-center gap-2"):
                testid(ui.label("Servers").classes("text-2xl font-semibold"), "page-title")
                ui.space()
                testid(
                    ui.button("New profile", icon="add", on_click=lambda: self.editor.edit(None)),
                    "new-profile",
                )
                ui.button("Export", icon="file_download", on_click=self._export).props("flat no-caps")
                ui.button("Import", icon="file_upload", on_click=self._open_import).props("flat no-caps")
            with testid(ui.card(), "start-bar").classes("w-full").props("bordered"):
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    self.picker = testid(
                        ui.select({}, label="Profile", with_input=True)
                        .props("outlined dense")
                        .classes("grow"),
                        "profile-picker",
                    )
                    testid(ui.button("Start", icon="play_arrow", on_click=self._start_picked), "start-picked")
            MemorySummary(self.supervisor.memory)
            ui.label("Running").classes("text-lg font-semibold")
            self.running = ui.element("div").classes("w-full grid grid-cols-1 lg:grid-cols-2 gap-3")
            ui.label("Stopped and failed").classes("text-lg font-semibold")
            self.others = ui.column().classes("w-full gap-2")
        unsubscribe = self.supervisor.on_change(self._changed)
        ui.context.client.on_delete(unsubscribe)
        self._rebuild()
        if model:
            self.editor.edit(None, model=model)

    # ----- sections (rebuilt on membership changes only) ---------------------------------------------
    def _changed(self, event: ServerEvent) -> None:
        self._rebuild()

    def _rebuild(self) -> None:
        servers = self.supervisor.fleet()  # profiles, and local models while they run or failed
        running = [s.name for s in servers if s.state in RUNNING_STATES]
        others = [s.name for s in servers if s.state not in RUNNING_STATES]
        everything = self.supervisor.fleet(every_model=True)  # any local model starts without a profile
        self.picker.options = {s.name: _picker_label(s) for s in everything}
        self.picker.update()
        if running != self._running_names:
            self._running_names = running
            self.running.clear()
            with self.running:
                if not running:
                    EmptyState("dns", "No servers running", "Pick a profile above and press Start.")
                for name in running:
                    ServerTile(self.supervisor.servers[name], gateway_url=f"{self.services.config.base_url}/v1",
                               on_stop=self._stop, on_restart=self._restart,
                               on_logs=self._logs)  # fmt: skip
        if others != self._other_names:
            self._other_names = others
            self.others.clear()
            with self.others:
                if not servers:
                    EmptyState("add_circle", "No server profiles yet",
                               "Create one with New profile, or from a model in Models → Local.")  # fmt: skip
                elif not others:
                    ui.label("Every profile is running.").classes("text-sm text-slate-500")
                for name in others:
                    self._compact_row(self.supervisor.servers[name])

    def _compact_row(self, server: ManagedServer) -> None:
        with (
            testid(ui.card(), f"profile-row-{server.name}")
            .classes("w-full gap-1 py-2")
            .props("flat bordered")
        ):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                implicit = server.profile.implicit
                ui.label(display_name(server.profile)).classes("font-semibold truncate")
                ui.label("local model, no profile" if implicit else server.profile.model).classes(
                    "text-xs text-slate-500 truncate"
                )
                ui.space()
                StateChip(server)
                testid(ui.button(icon="play_arrow", on_click=lambda: self._start(server.name))
                       .props('flat round dense aria-label="Start"').tooltip("Start"), f"start-{server.name}")  # fmt: skip
                ui.button(icon="edit", on_click=lambda: self._edit(server.name)).props(
                    f'flat round dense aria-label="{"Create a profile" if implicit else "Edit"}"'
                ).tooltip("Create a profile with its settings" if implicit else "Edit")
                if not implicit:
                    ui.button(icon="content_copy", on_click=lambda: self._duplicate(server.name)).props(
                        'flat round dense aria-label="Duplicate"'
                    ).tooltip("Duplicate")
                ui.button(icon="article", on_click=lambda: self._logs(server)).props(
                    'flat round dense aria-label="Logs"'
                ).tooltip("Logs")
                if not implicit:
                    testid(ui.button(icon="delete", on_click=lambda: self._confirm_delete(server.name))
                           .props('flat round dense aria-label="Delete"').tooltip("Delete"),
                           f"delete-{server.name}")  # fmt: skip
            error = testid(
                ui.label().classes("text-xs text-red-400 whitespace-pre-wrap"), f"error-{server.name}"
            )
            error.bind_text_from(server, "error", lambda e: (e or "")[-1500:])
            error.bind_visibility_from(server, "error", bool)
            note = testid(
                ui.label().classes("text-xs text-slate-600 dark:text-slate-400"), f"note-{server.name}"
            )
            note.bind_text_from(server, "note", lambda n: n or "")  # "Stopped to make room for b"
            note.bind_visibility_from(server, "note", bool)

    # ----- actions ---------------------------------------------------------------------------------------
    async def _start_picked(self) -> None:
        if not self.picker.value:
            ui.notify("Pick a profile first.", type="warning")
            return
        await self._start(self.picker.value)

    async def _start(self, name: str) -> None:
        server = self.supervisor.get(name)
        if server is None:
            return
        if await self._wont_fit(server) and not await self._confirm(
            f"{server.profile.model} will not fit in this machine's memory. Start anyway?", "Start anyway"
        ):
            return

        notify = Notifier()

        async def run() -> None:
            try:
                try:
                    await self.supervisor.start(name)
                except AdmissionRefused as refused:  # it does not fit the memory budget: the user may insist
                    with self.content:
                        if not await self._confirm(str(refused), "Start anyway"):
                            return
                    await self.supervisor.start(name, force=True)
            except ServerError as exc:
                notify(
                    f"{name} could not start: {str(exc).splitlines()[0]}", type="negative", multi_line=True
                )

        background_tasks.create(run(), name=f"start {name}")  # the tile shows progress through its state chip

    async def _stop(self, server: ManagedServer) -> None:
        await self.supervisor.stop(server.name)

    async def _restart(self, server: ManagedServer) -> None:
        notify = Notifier()

        async def run() -> None:
            try:
                await self.supervisor.restart(server.name)
            except ServerError as exc:
                notify(f"{server.name} could not restart: {str(exc).splitlines()[0]}", type="negative")

        background_tasks.create(run(), name=f"restart {server.name}")

    def _logs(self, server: ManagedServer) -> None:
        LogViewer(server.name, server.log_path).open()

    async def _edit(self, name: str) -> None:
        server = self.supervisor.get(name)
        if server is not None and server.profile.implicit:  # its default becomes a profile when saved
            self.editor.edit(None, model=server.profile.model)
            return
        self.editor.edit(await self.supervisor.profiles.get(name))

    async def _duplicate(self, name: str) -> None:
        copy = await self.supervisor.profiles.duplicate(name)
        ui.notify(f"Created {copy.name}")

    async def _confirm_delete(self, name: str) -> None:
        server = self.supervisor.get(name)
        running = server is not None and server.state in RUNNING_STATES
        what = "Its server is stopped first; its chats stay." if running else "Its chats stay."
        if await self._confirm(f"Delete the profile {name}? {what}", "Delete"):
            try:
                await self.supervisor.profiles.delete(name)
            except ProfileError as exc:
                ui.notify(exc.message, type="negative")

    async def _saved(self, profile: Profile) -> None:
        ui.notify(f"Saved {profile.name}", type="positive")

    async def _export(self) -> None:
        text = await self.supervisor.profiles.export_yaml()
        ui.download(text.encode(), "mlxui-profiles.yaml", "application/yaml")

    def _open_import(self) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label("Import server profiles from a YAML export").classes("font-semibold")
            ui.upload(label="Choose a .yaml file", auto_upload=True,
                      on_upload=lambda e: self._import(e, dialog)).props("accept=.yaml,.yml flat bordered")  # fmt: skip
        dialog.open()

    async def _import(self, event: events.UploadEventArguments, dialog: ui.dialog) -> None:
        dialog.close()
        try:
            text = (await event.file.read()).decode("utf-8")
            imported = await self.supervisor.profiles.import_yaml(text)
        except (UnicodeDecodeError, ProfileError) as exc:
            ui.notify(f"Import failed: {getattr(exc, 'message', exc)}", type="negative", multi_line=True)
            return
        ui.notify(f"Imported {len(imported)} profiles", type="positive")

    async def _wont_fit(self, server: ManagedServer) -> bool:
        folder = resolve_model(server.profile.model, self.services.config.hf_cache)
        if folder is None:
            return False  # the start itself reports a missing model
        caps = await asyncio.to_thread(read_local_capabilities, folder)
        return fit_on_this_machine(caps)[1] == "wont_fit"

    async def _confirm(self, question: str, yes: str) -> bool:
        with ui.dialog() as dialog, ui.card():
            ui.label(question)
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
                testid(ui.button(yes, color="negative", on_click=lambda: dialog.submit(True)), "confirm")
        return bool(await dialog)


def _picker_label(server: ManagedServer) -> str:
    if server.profile.implicit:
        return f"{display_name(server.profile)} · local model"
    return f"{server.name} · {server.profile.model}"
