"""The list of Hub search results: cards are appended page by page (never rebuilt on a timer),
each card reads its capabilities when it first scrolls into view, and the next page loads when
the end of the list comes into view."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nicegui import ui

from mlxui.hub.capabilities import Capabilities
from mlxui.hub.errors import HubError, HubUnavailable
from mlxui.hub.search import HubModel, SearchResults
from mlxui.ui.components.model_card import ModelCard
from mlxui.ui.testid import testid

MAX_PARALLEL_CAPS = 3  # at most this many model-file reads at once, however fast the user scrolls
# A placeholder keeps its height until its card first shows (so one append does not load every
# card's capabilities at once); a card hidden while it downloads leaves no empty gap behind.
LAZY_CSS = ".lazy-card:has(> * > .hidden) { min-height: 0 }"


class HubResults(ui.column):
    def __init__(
        self,
        *,
        search: Callable[[], Awaitable[SearchResults]],
        card_factory: Callable[[HubModel], ModelCard],
        caps_for: Callable[[HubModel], Awaitable[tuple[Capabilities | None, str | None, str | None]]],
    ) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self._search, self._card_factory, self._caps_for = search, card_factory, caps_for
        self.results: SearchResults | None = None
        self.cards: dict[str, tuple[ui.element, ModelCard]] = {}
        self.flags: set[str] = set()
        self._caps_slots = asyncio.Semaphore(MAX_PARALLEL_CAPS)
        self._generation = 0
        ui.add_css(LAZY_CSS)
        with self:
            self.banner = testid(
                ui.label().classes("w-full p-3 rounded text-sm bg-amber-500/20"), "hub-banner"
            )
            self.banner.set_visibility(False)
            self.list = ui.column().classes("w-full gap-2")
            with ui.element("q-intersection").classes("w-full") as self.sentinel:
                self.more_button = testid(
                    ui.button("Load more", on_click=self.load_more).props("flat no-caps").classes("w-full"),
                    "load-more",
                )
            self.sentinel.on("visibility", lambda e: self.load_more() if e.args else None)
            self.sentinel.set_visibility(False)
            self.count = testid(ui.label().classes("text-xs text-slate-500"), "result-count")

    async def refresh(self) -> None:
        """Run the search again from the first page (new query, sort or filter)."""
        self._generation += 1
        generation = self._generation
        self.list.clear()
        self.cards.clear()
        self.sentinel.set_visibility(False)
        self._show_banner(None)
        self.count.text = "Searching…"
        try:
            results = await self._search()
        except HubUnavailable as exc:
            return self._fail(
                generation, f"Offline: {exc.message} Your downloaded models are in the Local tab."
            )
        except HubError as exc:
            return self._fail(generation, exc.message)
        if generation != self._generation or self.is_deleted:
            return None  # a newer search started while this one waited
        self.results = results
        self._add(results.models)
        return None

    async def load_more(self) -> None:
        results, generation = self.results, self._generation
        if results is None or not results.has_more:
            return
        try:
            new = await results.more()
        except HubError as exc:
            self._show_banner(exc.message)
            return
        if generation == self._generation and not self.is_deleted:
            self._add(new)

    def apply_filters(self, flags: set[str]) -> None:
        self.flags = set(flags)
        for wrapper, card in self.cards.values():
            wrapper.set_visibility(card.matches(self.flags))
        self._update_count()

    def _add(self, models: list[HubModel]) -> None:
        with self.list:
            for model in models:
                if model.repo_id in self.cards:
                    continue
                wrapper = testid(ui.element("q-intersection"), f"lazy-{model.repo_id}")
                with wrapper.props("once").classes("w-full min-h-[92px] lazy-card"):
                    card = self._card_factory(model)
                wrapper.on("visibility", lambda e, c=card: self._load_caps(c) if e.args else None)
                self.cards[model.repo_id] = (wrapper, card)
        self.sentinel.set_visibility(bool(self.results and self.results.has_more))
        self._update_count()

    async def _load_caps(self, card: ModelCard) -> None:
        async with self._caps_slots:
            await card.request_caps()
        wrapper, _ = self.cards.get(card.model.repo_id, (None, None))
        if wrapper is not None:
            wrapper.set_visibility(card.matches(self.flags))
            self._update_count()

    def _update_count(self) -> None:
        shown = sum(1 for wrapper, _ in self.cards.values() if wrapper.visible)
        more = " · scroll for more" if self.results and self.results.has_more else ""
        self.count.text = f"{shown} models shown{more}" if self.cards else "No models match."

    def _fail(self, generation: int, message: str) -> None:
        if generation == self._generation and not self.is_deleted:
            self.count.text = ""
            self._show_banner(message)

    def _show_banner(self, message: str | None) -> None:
        self.banner.text = message or ""
        self.banner.set_visibility(bool(message))
