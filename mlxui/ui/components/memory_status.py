"""The footer's memory line: "Memory: planned X · using Y of Z budget", bound to the fleet's
`MemoryState` (the supervisor's 1 Hz tick writes it). Under memory pressure it turns amber (warn)
or red (critical) with an icon; its tooltip gives the pressure reason and where the budget comes
from."""

from __future__ import annotations

from nicegui import binding, ui

from mlxui.servers.state import MemoryState
from mlxui.ui.memory_text import bind_summary, budget_text
from mlxui.ui.testid import testid

# On the footer's slate-900: slate-300, amber-300 and red-300 all read at over 7:1.
LOOK = {
    "normal": ("memory", "text-slate-300"),
    "warn": ("warning", "text-amber-300"),
    "critical": ("error", "text-red-300"),
}


class MemoryStatus(ui.row):
    def __init__(self, memory: MemoryState) -> None:
        super().__init__()
        self.memory = memory
        self.classes("items-center gap-1 no-wrap")
        testid(self, "footer-memory")
        with self:
            self.icon = ui.icon("memory", size="xs")
            testid(bind_summary(ui.label(), memory, "Memory: "), "footer-memory-text")
            with ui.tooltip().classes("text-sm"):
                testid(ui.label().bind_text_from(memory, "pressure_reason"), "footer-memory-pressure")
                budget = testid(ui.label(), "footer-memory-budget")
                for name in ("budget_bytes", "budget_source"):
                    budget.bind_text_from(memory, name, lambda _: budget_text(memory))
        self._level = ""
        binding.bind_from(self, "level", memory, "pressure_level")

    @property
    def level(self) -> str:
        return self._level

    @level.setter
    def level(self, level: str) -> None:
        """Restyle for a pressure level (bound to `MemoryState.pressure_level`)."""
        if level == self._level:
            return
        icon, colour = LOOK.get(level, LOOK["critical"])
        for _, old in LOOK.values():
            self.classes(remove=old)
        self.classes(add=colour)
        self.icon.name = icon
        self.icon.props(f'aria-label="memory pressure: {level}"')
        self.mark(f"footer-memory footer-memory-{level}").props(f'data-level="{level}"')  # for tests
        self._level = level
