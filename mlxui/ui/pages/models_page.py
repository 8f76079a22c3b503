"""Models page: search the Hub, judge a model by its badges and fit, download it, manage local models."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from huggingface_hub import get_token
from nicegui import ui

from mlxui.hub.cache import cached_revisions
from mlxui.hub.capabilities import Capabilities
from mlxui.hub.errors import GatedRepo, HubError
from mlxui.hub.model_info import get_model_details
from mlxui.hub.search import HubModel, SearchResults, search_models
from mlxui.servers.profiles import resolve_model
from mlxui.servers.state import RUNNING_STATES
from mlxui.state import DownloadState
from mlxui.ui.components.downloads_tile import DownloadsTile
from mlxui.ui.components.hub_results import HubResults
from mlxui.ui.components.local_models import LocalModels
from mlxui.ui.components.model_card import ModelCard
from mlxui.ui.components.model_details import ModelDetailsPanel
from mlxui.ui.frame import frame
from mlxui.ui.keyboard import closes_on_escape
from mlxui.ui.testid import testid

if TYPE_CHECKING:
    from mlxui.services import Services

SORT_LABELS = {"downloads": "Most downloads", "likes": "Most likes", "updated": "Recently updated",
               "trending": "Trending"}  # fmt: skip
FILTERS = {"vision": "Vision", "tools": "Tools", "thinking": "Thinking", "fits": "Fits in memory"}
DEBOUNCE_S = 0.35
DEFAULT_AUTHOR = "mlx-community"


async def build(
    services: Services, *, query: str = "", author: str = DEFAULT_AUTHOR, tab: str = "hub"
) -> None:
    """`query`, `author` and `tab` come from the URL, so a search can be bookmarked."""
    page = ModelsPage(services)
    await page.build(query=query, author=author, tab=tab)


class ModelsPage:
    """Per-tab page state: the search form, the results and the drawer."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config
        self.downloads = services.downloads
        self._typed = 0
        self.local_repo_ids: set[str] = set()

    async def build(self, *, query: str, author: str, tab: str) -> None:
        with ui.right_drawer(value=False, fixed=False).props("width=520 overlay bordered") as self.drawer:
            with ui.row().classes("w-full justify-end"):
                testid(
                    ui.button(icon="close", on_click=lambda: self.drawer.hide()).props(
                        'flat round dense aria-label="Close the details"'
                    ),
                    "close-details",
                )
            self.details = ModelDetailsPanel(on_download=self.download)
        closes_on_escape(self.drawer, always=True)
        with frame(self.services, "/models"):
            with ui.row().classes("w-full items-center"):
                testid(ui.label("Models").classes("text-2xl font-semibold"), "page-title")
                ui.space()
                with ui.tabs().props("dense no-caps") as tabs:
                    hub_tab = testid(ui.tab("hub", "Hub", icon="travel_explore"), "tab-hub")
                    local_tab = testid(ui.tab("local", "Local", icon="inventory_2"), "tab-local")
            self.toolbar = self._toolbar(query, author)
            self.tile = DownloadsTile(self.downloads)
            with ui.tab_panels(tabs, value=local_tab if tab == "local" else hub_tab).classes(
                "w-full bg-transparent"
            ) as panels:
                with ui.tab_panel(hub_tab).classes("p-0"):
                    self.results = HubResults(
                        search=self.search, card_factory=self.card, caps_for=self.caps_for
                    )
                with ui.tab_panel(local_tab).classes("p-0"):
                    self.local = LocalModels(self.config.hf_cache, self.downloads, in_use=self.server_using)
        panels.on_value_change(self._tab_changed)
        ui.context.client.on_delete(self.downloads.on_done(self._download_finished))
        await self._refresh_local_ids()
        if tab == "local":
            self.toolbar.set_visibility(False)
            await self.local.refresh()
        await self.results.refresh()

    def _toolbar(self, query: str, author: str) -> ui.element:
        with (
            testid(ui.card(), "models-toolbar")
            .classes("w-full sticky top-[56px] z-10 gap-2 py-2 shadow-md")
            .props("bordered") as bar
        ):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                self.query = testid(
                    ui.input(value=query, placeholder="Search models, e.g. qwen3 4bit").props("dense outlined clearable")
                    .classes("grow"), "search-input",
                )  # fmt: skip
                self.query.props("debounce=0")
                self.query.on_value_change(self._typed_query)
                self.author = testid(
                    ui.input(value=author, placeholder="any author").props("dense outlined clearable")
                    .classes("w-48"), "author-input",
                )  # fmt: skip
                self.author.on_value_change(self._typed_query)
                self.sort = testid(
                    ui.select(SORT_LABELS, value="downloads", on_change=self.results_refresh).props("dense outlined")
                    .classes("w-48"), "sort-select",
                )  # fmt: skip
            with ui.row().classes("w-full items-center gap-1"):
                self.mlx_only = testid(
                    ui.switch("MLX only", value=True, on_change=self.results_refresh), "mlx-only"
                )
                ui.separator().props("vertical")
                self.flags: dict[str, ui.chip] = {}
                for key, label in FILTERS.items():
                    chip = ui.chip(label, selectable=True, on_selection_change=self._filters_changed)
                    self.flags[key] = testid(chip.props("outline dense"), f"filter-{key}")
        return bar

    # ----- searching ---------------------------------------------------------------------------------
    async def search(self) -> SearchResults:
        return await search_models(
            self.query.value or "",
            author=(self.author.value or "").strip() or None,
            sort=self.sort.value,
            mlx_only=bool(self.mlx_only.value),
            limit=30,
            endpoint=self.config.hf_endpoint,
            token=get_token(),
        )

    async def results_refresh(self) -> None:
        await self.results.refresh()
        self.results.apply_filters(self._selected_flags())

    async def _typed_query(self) -> None:
        self._typed += 1
        mine = self._typed
        await asyncio.sleep(DEBOUNCE_S)
        if mine == self._typed:
            await self.results_refresh()

    def _selected_flags(self) -> set[str]:
        return {key for key, chip in self.flags.items() if chip.selected}

    def _filters_changed(self) -> None:
        self.results.apply_filters(self._selected_flags())

    # ----- cards, capabilities, details ---------------------------------------------------------------
    def card(self, model: HubModel) -> ModelCard:
        return ModelCard(
            model,
            load_caps=self.caps_for,
            on_download=lambda m: self.download(m.repo_id),
            on_details=self.open_details,
            download=self.downloads.downloads.get(model.repo_id),
            is_local=model.repo_id in self.local_repo_ids,
        )

    async def caps_for(self, model: HubModel) -> tuple[Capabilities | None, str | None, str | None]:
        try:
            details = await get_model_details(
                model.repo_id, sha=model.sha, endpoint=self.config.hf_endpoint, token=get_token()
            )
        except GatedRepo:
            return None, None, "Gated: add a Hugging Face token in Settings to see its details."
        except HubError as exc:
            return None, None, exc.message
        _estimate, fit = details.memory()
        return details.capabilities, fit, None

    async def open_details(self, model: HubModel) -> None:
        self.details.loading(model.repo_id)
        self.drawer.show()
        try:
            details = await get_model_details(
                model.repo_id, sha=model.sha, endpoint=self.config.hf_endpoint, token=get_token()
            )
        except HubError as exc:
            self.details.failed(model.repo_id, exc.message)
            return
        self.details.show(details, downloaded=model.repo_id in self.local_repo_ids)

    # ----- downloading -------------------------------------------------------------------------------
    async def download(self, repo_id: str) -> None:
        await self._refresh_local_ids()  # it may have been downloaded since the page opened
        if repo_id in self.local_repo_ids:
            self._mark_downloaded(repo_id)
            ui.notify(f"{repo_id} is already downloaded: chat with it, or create a profile.", type="info")
            return
        verdict = await self._fit_verdict(repo_id)
        if verdict == "wont_fit" and not await self._confirm_wont_fit(repo_id):
            return
        try:
            state = await self.downloads.enqueue(repo_id)
        except HubError as exc:
            ui.notify(exc.message, type="negative")
            return
        entry = self.results.cards.get(repo_id)
        if entry is not None:
            entry[1].follow(state)
        self.tile.refresh()
        ui.notify(f"Downloading {repo_id}", type="info")

    async def _fit_verdict(self, repo_id: str) -> str | None:
        try:
            details = await get_model_details(repo_id, endpoint=self.config.hf_endpoint, token=get_token())
        except HubError:
            return None  # the download itself reports what is wrong
        return details.memory()[1]

    async def _confirm_wont_fit(self, repo_id: str) -> bool:
        with ui.dialog() as dialog, ui.card():
            ui.label(f"{repo_id} will not fit in this machine's memory.").classes("font-semibold")
            ui.label("It can be downloaded, but loading it will fail or swap heavily.")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
                testid(ui.button("Download anyway", on_click=lambda: dialog.submit(True)), "confirm-download")
        return bool(await dialog)

    async def _download_finished(self, state: DownloadState) -> None:
        self._mark_downloaded(state.repo_id)
        await self._refresh_local_ids()
        await self.local.refresh()

    def _mark_downloaded(self, repo_id: str) -> None:
        """The card and the drawer offer Chat instead of Download, at once."""
        self.local_repo_ids.add(repo_id)
        entry = self.results.cards.get(repo_id)
        if entry is not None:
            entry[1].downloaded = True
        self.details.mark_downloaded(repo_id)

    async def _refresh_local_ids(self) -> None:
        revisions = await asyncio.to_thread(cached_revisions, self.config.hf_cache)
        self.local_repo_ids = {r.repo_id for r in revisions if r.complete}

    def server_using(self, name: str, paths: list) -> str | None:
        """The running server that uses this model (deleting it is refused then), if any."""
        for server in self.services.supervisor.servers.values():
            if server.state not in RUNNING_STATES:
                continue
            folder = resolve_model(server.profile.model, self.config.hf_cache)
            if server.profile.model == name or (folder is not None and folder in paths):
                return server.name
        return None

    async def _tab_changed(self, event) -> None:
        self.toolbar.set_visibility(event.value == "hub")
        if event.value == "local":
            await self.local.refresh()
