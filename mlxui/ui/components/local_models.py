"""The Local tab: models in the Hugging Face cache plus folders the user added.

The list is rebuilt only when its membership changes (opened, a download finished, a model was
deleted or a folder added), never on a timer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nicegui import ui

from mlxui.format import human_bytes
from mlxui.hub.downloads import DownloadManager
from mlxui.hub.local import (
    InUse,
    LocalEntry,
    LocalModelError,
    add_local_folder,
    delete_cached_model,
    list_local_models,
    remove_local_folder,
)
from mlxui.ui.components.capability_badges import CapabilityBadges
from mlxui.ui.components.chat_button import ChatButton
from mlxui.ui.components.empty_state import EmptyState
from mlxui.ui.links import new_profile_url
from mlxui.ui.testid import testid


class LocalModels(ui.column):
    def __init__(self, cache_dir: Path, downloads: DownloadManager, in_use: InUse | None = None) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self.cache_dir, self.downloads, self.in_use = cache_dir, downloads, in_use
        self.entries: list[LocalEntry] = []
        with self:
            with ui.row().classes("w-full items-center gap-2"):
                self.folder_input = testid(
                    ui.input(placeholder="/path/to/a/model/folder")
                    .props("dense outlined clearable")
                    .classes("grow"),
                    "local-folder-input",
                )
                testid(
                    ui.button("Add folder", icon="create_new_folder", on_click=self._add_folder), "add-folder"
                )
            self.list = ui.column().classes("w-full gap-2")

    async def refresh(self) -> None:
        entries = await list_local_models(self.cache_dir)
        if self.is_deleted:
            return
        self.entries = entries
        self.list.clear()
        with self.list:
            if not entries:
                EmptyState(
                    "inventory_2",
                    "No local models",
                    "Download a model from the Hub tab, or add a model folder.",
                )
            for entry in entries:
                LocalModelRow(entry, on_delete=self._confirm_delete)

    async def _add_folder(self) -> None:
        try:
            entry = await add_local_folder(self.folder_input.value or "")
        except LocalModelError as exc:
            ui.notify(exc.message, type="negative")
            return
        self.folder_input.value = ""
        ui.notify(f"Added {entry.path}", type="positive")
        await self.refresh()

    def _confirm_delete(self, entry: LocalEntry) -> None:
        verb = "Delete" if entry.source == "hf_cache" else "Remove"
        what = (
            f"Delete {entry.name} ({human_bytes(entry.size_on_disk)}) from the Hugging Face cache?"
            if entry.source == "hf_cache"
            else f"Remove {entry.path} from the list? Its files stay on disk."
        )
        with ui.dialog() as dialog, ui.card():
            ui.label(what)
            with ui.row().classes("w-full justify-end"):
                ui.button("Keep", on_click=dialog.close).props("flat")
                testid(
                    ui.button(verb, color="negative", on_click=lambda: self._delete(entry, dialog)),
                    "confirm-delete",
                )
        dialog.open()

    async def _delete(self, entry: LocalEntry, dialog: ui.dialog) -> None:
        dialog.close()
        try:
            if entry.source == "hf_cache" and entry.repo_id:
                freed = await delete_cached_model(
                    self.cache_dir, entry.repo_id, in_use=self.in_use, downloads=self.downloads
                )
                ui.notify(f"Deleted {entry.name}; {human_bytes(freed)} freed.", type="positive")
            else:
                await remove_local_folder(entry.path, in_use=self.in_use)
                ui.notify(f"Removed {entry.path} from the list.")
        except LocalModelError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return
        await self.refresh()


class LocalModelRow(ui.card):
    def __init__(self, entry: LocalEntry, *, on_delete: Callable[[LocalEntry], None]) -> None:
        super().__init__()
        self.classes("w-full gap-1 py-3").props("flat bordered")
        testid(self, f"local-model-{entry.name}")
        with self:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.icon("inventory_2" if entry.source == "hf_cache" else "folder", size="sm").classes(
                    "text-slate-400"
                )
                with ui.column().classes("gap-0 min-w-0 grow basis-0"):
                    ui.label(entry.name).classes("w-full text-base font-semibold truncate")
                    path = ui.label(str(entry.path)).classes("w-full text-xs text-slate-500 truncate")
                    path.tooltip(str(entry.path))
                ui.label(human_bytes(entry.size_on_disk)).classes("text-sm text-slate-500 whitespace-nowrap")
                model_ref = entry.repo_id or str(entry.path)
                if not entry.problem:
                    testid(ChatButton(model_ref).props("dense"), "local-chat")
                testid(
                    ui.button(
                        "Create server profile",
                        icon="add",
                        on_click=lambda: ui.navigate.to(new_profile_url(model_ref)),
                    ).props("flat dense no-caps"),
                    "create-profile",
                )
                what = "Delete" if entry.source == "hf_cache" else "Remove from list"
                delete = ui.button(icon="delete", on_click=lambda: on_delete(entry))
                testid(
                    delete.props(f'flat round dense aria-label="{what}"').tooltip(what),
                    "delete-model",
                )
            if entry.problem:
                ui.label(entry.problem).classes("text-xs text-amber-500")
            else:
                CapabilityBadges(entry.capabilities, entry.fit)
