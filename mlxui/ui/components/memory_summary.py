"""The Servers page's memory summary: planned · using · budget, a bar of planned against the
budget, the start that waits for memory (and why) and the system's memory pressure. Everything is
bound to the fleet's `MemoryState`, which the supervisor's 1 Hz tick writes."""

from __future__ import annotations

from nicegui import ui

from mlxui.servers.state import MemoryState
from mlxui.ui.memory_text import bind_summary, budget_text
from mlxui.ui.testid import testid


class MemorySummary(ui.card):
    def __init__(self, memory: MemoryState) -> None:
        super().__init__()
        self.classes("w-full gap-1 py-3").props("bordered")
        testid(self, "memory-summary")
        with self:
            with ui.row().classes("w-full items-center gap-2"):
                ui.icon("memory", size="sm").classes("text-violet-700 dark:text-violet-300")
                ui.label("Memory").classes("font-semibold")
                testid(bind_summary(ui.label().classes("text-sm"), memory), "memory-summary-text")
                ui.space()
                source = testid(ui.label().classes("text-xs text-slate-500 dark:text-slate-400"),
                                "memory-summary-budget")  # fmt: skip
                for name in ("budget_bytes", "budget_source"):
                    source.bind_text_from(memory, name, lambda _: budget_text(memory))
            bar = ui.linear_progress(value=0.0, show_value=False, size="8px", color="primary")
            testid(bar.classes("rounded").props('rounded aria-label="Planned memory against the budget"'),
                   "memory-summary-bar")  # fmt: skip
            for name in ("planned_bytes", "budget_bytes"):
                bar.bind_value_from(memory, name, lambda _: _share(memory))
                bar.bind_text_color_from(
                    memory, name, lambda _: "negative" if _share(memory) >= 1 else "primary"
                )
            with ui.row().classes("w-full items-center gap-1 no-wrap text-sm") as waiting:
                ui.icon("hourglass_top", size="xs").classes("text-amber-700 dark:text-amber-300")
                testid(ui.label().bind_text_from(memory, "waiting"), "memory-summary-waiting")
            waiting.bind_visibility_from(memory, "waiting", bool)
            with ui.row().classes("w-full items-center gap-1 no-wrap text-sm") as pressure:
                ui.icon("warning", size="xs").classes("text-red-700 dark:text-red-300")
                testid(ui.label().bind_text_from(memory, "pressure_reason"), "memory-summary-pressure")
            pressure.bind_visibility_from(
                memory, "pressure_level", lambda level: level in ("warn", "critical")
            )


def _share(memory: MemoryState) -> float:
    """Planned memory as a share of the budget (above 1 after a forced start)."""
    return memory.planned_bytes / memory.budget_bytes if memory.budget_bytes else 0.0
