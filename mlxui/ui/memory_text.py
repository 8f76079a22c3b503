"""How the memory UI writes bytes and the fleet's memory line, in one place.

Memory numbers (budget, planned, used) are binary, `memory_budget.format_size`: a budget typed as
"24GB" means 24 x 1024**3 bytes and macOS shows memory the same way (docs/architecture.md §9), so
the budget reads here as it was typed in Settings. Downloads and model sizes elsewhere stay decimal
(`mlxui.format.human_bytes`, like the Hub).
"""

from __future__ import annotations

from nicegui import ui

from mlxui.servers.memory_budget import format_size
from mlxui.servers.state import MemoryState

SUMMARY_FIELDS = ("planned_bytes", "used_bytes", "budget_bytes")


def memory_size(n: int | None) -> str:
    """Bytes as the memory UI shows them ("1.5 GB", binary); "n/a" when unknown."""
    return "n/a" if n is None else format_size(n)


def summary_text(memory: MemoryState) -> str:
    """ "planned 2 GB · using 612 MB of 3 GB budget" """
    return (
        f"planned {memory_size(memory.planned_bytes)} · using {memory_size(memory.used_bytes)} "
        f"of {memory_size(memory.budget_bytes)} budget"
    )


def bind_summary(label: ui.label, memory: MemoryState, prefix: str = "") -> ui.label:
    """Keep `label` showing `prefix + summary_text(memory)`: one binding per number it reads, each
    writing the whole line, so it changes when any of them does (and sends nothing otherwise)."""
    for name in SUMMARY_FIELDS:
        label.bind_text_from(memory, name, lambda _: prefix + summary_text(memory))
    return label


def budget_text(memory: MemoryState) -> str:
    """ "Budget 3 GB (setting)" """
    return f"Budget {memory_size(memory.budget_bytes)} ({memory.budget_source})"
