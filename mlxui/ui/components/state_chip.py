"""A server's state as a coloured chip; restyles itself when the state changes."""

from __future__ import annotations

from nicegui import ui

from mlxui.servers.state import ServerState

LOOK = {
    ServerState.STOPPED: ("grey", "stop_circle"),
    ServerState.STARTING: ("info", "hourglass_top"),
    ServerState.LOADING: ("info", "downloading"),
    ServerState.READY: ("positive", "check_circle"),
    ServerState.FAILED: ("negative", "error"),
    ServerState.CRASHED: ("negative", "report"),
    ServerState.STOPPING: ("warning", "hourglass_bottom"),
}


class StateChip(ui.chip):
    def __init__(self, server) -> None:
        super().__init__(text="", color="grey")
        self.props("dense square text-color=white")
        self.bind_text_from(server, "state", backward=self._restyle)

    def _restyle(self, state: ServerState) -> str:
        color, icon = LOOK.get(ServerState(state), ("grey", "help"))
        self.props(f"color={color} icon={icon}")
        return str(state)
