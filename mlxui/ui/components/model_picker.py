"""The Chat page's model picker: every model this machine can chat with, grouped as running, local
models (no profile needed) and profiles, each with its capability badges, then one group per other
mlxui machine (servers/peers.py) with its models as `<machine>/<model>`, or why it is down. Typing
filters; Enter takes the only match. The menu is filled when it opens (and as the filter changes),
never on a timer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from mlxui.servers.model_defaults import display_name, short_name
from mlxui.servers.peers import Peer, PeerBook
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import RUNNING_STATES
from mlxui.servers.supervisor import Supervisor
from mlxui.ui.components.state_chip import StateChip
from mlxui.ui.testid import testid

GROUPS = (("running", "Running"), ("local", "Local models"), ("profiles", "Profiles"))
FLAGS = (("vision", "Vision", "teal"), ("thinking", "Thinking", "purple"), ("tools", "Tools", "orange"))


class ModelPicker(ui.button):
    def __init__(
        self,
        supervisor: Supervisor,
        *,
        on_pick: Callable[[str], Awaitable[None]],
        peers: PeerBook | None = None,
    ) -> None:
        super().__init__("Choose a model", icon="expand_more")
        self.supervisor = supervisor
        self.peers = peers
        self.on_pick = on_pick
        self.value: str | None = None
        self.props('outline no-caps icon-right=expand_more icon=smart_toy aria-label="Choose a model"')
        self.classes("max-w-full")
        testid(self, "model-picker")
        with self:
            with ui.menu().props("max-height=70vh").classes("min-w-[320px]") as self.menu:
                with ui.column().classes("w-full gap-0 p-2"):
                    self.filter = testid(
                        ui.input(placeholder="Find a model").props("dense outlined clearable autofocus"),
                        "model-filter",
                    ).classes("w-full")
                    self.options = ui.column().classes("w-full gap-0 pt-1")
        self.menu.on("before-show", self._fill)
        self.filter.on_value_change(self._fill)
        self.filter.on("keydown.enter", self._take_single)

    def set_value(self, name: str | None) -> None:
        """Show `name` (a server's name) as chosen; unknown names show what the chat remembers."""
        self.value = name
        server = self.supervisor.get(name) if name else None
        hit = self.peers.find(name) if self.peers is not None and name else None
        if server is not None:
            self.text = display_name(server.profile)
        elif hit is not None:
            self.text = f"{short_name(hit[1])} on {hit[0].name}"
        else:  # a chat's model that is gone: its short name, not a long path
            self.text = f"{short_name(name)} (gone)" if name else "Choose a model"

    def matches(self) -> list[ManagedServer]:
        text = (self.filter.value or "").strip().casefold()
        servers = sorted(self.supervisor.servers.values(), key=lambda s: display_name(s.profile).casefold())
        return [
            s for s in servers if not text or text in s.name.casefold() or text in s.profile.model.casefold()
        ]

    def peer_matches(self) -> list[tuple[Peer, dict[str, Any]]]:
        """(peer, its model card) for every peer model the filter matches, by peer then name."""
        if self.peers is None:
            return []
        text = (self.filter.value or "").strip().casefold()
        local = set(self.supervisor.servers)
        return [
            (peer, card)
            for peer in sorted(self.peers.peers.values(), key=lambda p: p.name)
            for card in sorted(peer.models, key=lambda c: str(c.get("id")).casefold())
            if peer.model_name(str(card.get("id"))) not in local
            and (not text or text in peer.model_name(str(card.get("id"))).casefold())
        ]

    def _fill(self) -> None:
        found = self.matches()
        remote = self.peer_matches()
        self.options.clear()
        with self.options:
            if not found and not remote:
                ui.label("No model matches. Download one on the Models page.").classes(
                    "text-sm text-slate-500 p-2"
                )
            for key, title in GROUPS:
                members = [s for s in found if _group(s) == key]
                if not members:
                    continue
                testid(ui.label(title), f"model-group-{key}").classes(
                    "text-xs uppercase tracking-wide text-slate-500 pt-2 px-2"
                )
                for server in members:
                    self._option(server)
            for peer in sorted(self.peers.peers.values(), key=lambda p: p.name) if self.peers else []:
                self._peer_group(peer, [card for p, card in remote if p is peer])

    def _peer_group(self, peer: Peer, cards: list[dict[str, Any]]) -> None:
        if not cards and peer.up:
            return
        title = f"On {peer.name}" if peer.up else f"On {peer.name} (down)"
        testid(ui.label(title), f"model-group-peer-{peer.name}").classes(
            "text-xs uppercase tracking-wide text-slate-500 pt-2 px-2"
        )
        if not peer.up:
            ui.label(peer.reason).classes("text-xs text-negative px-2")
        for card in cards:
            name = peer.model_name(str(card.get("id")))
            chosen = "bg-indigo-500/15" if name == self.value else ""
            with (
                testid(ui.item(on_click=lambda n=name: self._pick(n)), f"model-option-{name}")
                .classes(f"rounded {chosen}")
                .props("dense clickable" + ("" if peer.up else " disable"))
            ):
                with ui.item_section():
                    ui.item_label(short_name(str(card.get("id")))).classes("font-medium")
                    ui.item_label(f"on {peer.name} · {card.get('state', '')}").props("caption").classes(
                        "truncate"
                    )
                    caps = card.get("capabilities") if isinstance(card.get("capabilities"), dict) else {}
                    with ui.row().classes("gap-1 pt-1"):
                        for attribute, label, color in FLAGS:
                            if caps.get(attribute):
                                ui.badge(label, color=color).props("outline")

    def _option(self, server: ManagedServer) -> None:
        chosen = "bg-indigo-500/15" if server.name == self.value else ""
        with (
            testid(ui.item(on_click=lambda s=server: self._pick(s.name)), f"model-option-{server.name}")
            .classes(f"rounded {chosen}")
            .props("dense clickable")
        ):
            with ui.item_section():
                ui.item_label(display_name(server.profile)).classes("font-medium")
                caption = _caption(server)
                if caption:
                    ui.item_label(caption).props("caption").classes("truncate")
                entry = self.supervisor.local_entry(server)
                if entry is not None:
                    with ui.row().classes("gap-1 pt-1"):
                        for attribute, label, color in FLAGS:
                            if getattr(entry.capabilities, attribute):
                                ui.badge(label, color=color).props("outline")
            if server.state in RUNNING_STATES:
                with ui.item_section().props("side"):
                    StateChip(server)

    async def _take_single(self) -> None:
        names = [s.name for s in self.matches()]
        names += [peer.model_name(str(card.get("id"))) for peer, card in self.peer_matches() if peer.up]
        if len(names) == 1:
            await self._pick(names[0])

    async def _pick(self, name: str) -> None:
        self.menu.close()
        self.filter.value = ""
        self.set_value(name)
        await self.on_pick(name)


def _group(server: ManagedServer) -> str:
    if server.state in RUNNING_STATES:
        return "running"
    return "local" if server.profile.implicit else "profiles"


def _caption(server: ManagedServer) -> str:
    if server.profile.implicit:
        return server.profile.model if server.profile.model.startswith("/") else ""
    return f"profile of {short_name(server.profile.model)}"
