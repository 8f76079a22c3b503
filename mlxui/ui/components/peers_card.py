"""Other mlxui machines: add one (address, its gateway key, a name), see each one up or down with
its model count, remove one. Their models appear in /v1/models and the Chat page's picker as
`<name>/<model>` (servers/peers.py). The rows are rebuilt only when a machine is added or removed;
each row's state is bound to the peer's `status`, which the refresher keeps current. A saved key
never travels to the browser.
"""

from __future__ import annotations

from nicegui import ui

from mlxui.servers.peers import Peer, PeerBook, PeerError
from mlxui.ui.testid import testid

HELP = (
    "Models of other machines running mlxui answer here too, named <name>/<model>: in the Chat "
    "page, through /v1 and the other APIs. The key is that machine's gateway key (Settings there); "
    "it is sent only to that address."
)


class PeersCard(ui.card):
    def __init__(self, peers: PeerBook) -> None:
        super().__init__()
        self.peers = peers
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Other mlxui machines").classes("text-lg font-semibold")
            with ui.row().classes("w-full gap-2 no-wrap items-start"):
                self.url = testid(ui.input("Address, e.g. http://studio.local:8765")
                                  .props("outlined dense").classes("grow"), "peer-url")  # fmt: skip
                self.key = testid(ui.input("Its gateway key (if it has one)", password=True,
                                           password_toggle_button=True)
                                  .props("outlined dense autocomplete=new-password").classes("grow"),
                                  "peer-key")  # fmt: skip
                self.name = testid(
                    ui.input("Name (optional)").props("outlined dense").classes("w-40"), "peer-name"
                )
                testid(ui.button("Add", on_click=self._add).props("no-caps"), "peer-add")
            self.rows = testid(ui.column().classes("w-full gap-1"), "peer-rows")
            ui.label(HELP).classes("text-xs text-slate-500")
        self._fill()
        ui.context.client.on_delete(peers.on_change(self._fill))

    def _fill(self) -> None:
        self.rows.clear()
        with self.rows:
            if not self.peers.peers:
                testid(ui.label("No other machines yet.").classes("text-sm text-slate-500"), "peer-none")
            for name in sorted(self.peers.peers):
                self._row(self.peers.peers[name])

    def _row(self, peer: Peer) -> None:
        with testid(ui.row().classes("w-full items-center gap-2 no-wrap"), f"peer-row-{peer.name}"):
            ui.icon("check_circle", color="positive").bind_visibility_from(peer, "up")
            ui.icon("error", color="negative").bind_visibility_from(peer, "up", lambda up: not up)
            ui.label(peer.name).classes("font-medium")
            ui.label(peer.url).classes("text-sm text-slate-500 truncate")
            ui.label("key set" if peer.key else "no key").classes("text-xs text-slate-500")
            ui.space()
            state = testid(ui.label().classes("text-sm truncate"), f"peer-state-{peer.name}")
            state.bind_text_from(peer, "status")
            remove = ui.button(icon="delete", on_click=lambda p=peer: self._remove(p))
            testid(
                remove.props(f'flat dense round aria-label="Remove {peer.name}"'), f"peer-remove-{peer.name}"
            )

    async def _add(self) -> None:
        try:
            peer = await self.peers.add(self.url.value or "", self.key.value or None, self.name.value or None)
        except PeerError as exc:
            self.url.error = str(exc)
            return
        self.url.error = None
        self.url.value = self.key.value = self.name.value = ""
        ui.notify(f"Added {peer.name}: its models are named {peer.name}/<model>.", type="positive")

    async def _remove(self, peer: Peer) -> None:
        await self.peers.remove(peer.name)
        ui.notify(f"Removed {peer.name}.", type="info")
