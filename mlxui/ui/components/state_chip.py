"""A server's state as a coloured chip; restyles itself when the state changes."""

from __future__ import annotations

from nicegui import ui

from mlxui.servers.state import ServerState

# Shades dark enough for the chip's white text (WCAG AA, 4.5:1) in either mode; Quasar's own
# positive and warning are too light for it.
LOOK = {
    ServerState.STOPPED: ("grey-8", "stop_circle"),
    ServerState.STARTING: ("blue-8", "hourglass_top"),
    ServerState.LOADING: ("blue-8", "downloading"),
    ServerState.READY: ("green-9", "check_circle"),
    ServerState.FAILED: ("red-8", "error"),
    ServerState.CRASHED: ("red-8", "report"),
    ServerState.STOPPING: ("deep-orange-10", "hourglass_bottom"),
}


class StateChip(ui.chip):
    def __init__(self, server) -> None:
        super().__init__(text="", color="grey-8")
        self.props("dense square text-color=white")
        self.bind_text_from(server, "state", backward=self._restyle)

    def _restyle(self, state: ServerState) -> str:
        color, icon = LOOK.get(ServerState(state), ("grey-8", "help"))
        self.props(f"color={color} icon={icon}")
        return str(state)
