"""The memory budget: how many bytes the model servers may plan to use together (issue 14).

Where it comes from, first match wins (`effective_budget`):
1. `MLXUI_MEMORY_BUDGET` in the environment (read by `mlxui.config.load_config`),
2. the setting `servers.memory_budget` (Settings page, `PUT /api/settings`, `mlxui settings set`),
3. the default for this machine (`default_budget`, reasons in docs/architecture.md §9).

Sizes are binary, as macOS shows memory: "24GB", "24G" and "24GiB" all mean 24 x 1024**3 bytes
(About This Mac and Activity Monitor call 2**35 bytes "32 GB"; so does this module). A bare number
is bytes.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Protocol

import psutil

if TYPE_CHECKING:
    from mlxui.config import Config

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4
UNITS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": TIB}

MIN_BUDGET = 256 * MIB
MAX_BUDGET_FACTOR = 4  # more than RAM is allowed (swap, compression); 4x RAM is surely a typo
MACOS_FRACTION = 0.75  # Metal's recommended working set, which mlx_lm wires (docs/architecture.md §9)
LINUX_OS_RESERVE = 2 * GIB  # left to the OS and desktop on Linux, or 10 % of RAM if more
LINUX_OS_FRACTION = 0.10

SIZE_HELP = (
    "write bytes (25769803776) or a number with a unit: 24GB, 24 GB, 512MB, 1.5TB (1 GB = 1024³ bytes)"
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


class SizeError(ValueError):
    """A size or budget that cannot be used; the message is one sentence for the user."""


class BudgetSettings(Protocol):
    memory_budget: int | None


def parse_size(text: str | int) -> int:
    """Bytes from `text`: "25769803776", "24GB", "24 GB", "24G", "24GiB", "512MB", "1.5TB".

    Units are binary (see the module doc) and case-insensitive; a bare number must be whole bytes.
    Raises SizeError with a sentence for anything else.
    """
    if isinstance(text, bool):
        raise SizeError(f"{text!r} is not a size: {SIZE_HELP}.")
    if isinstance(text, int):
        if text < 0:
            raise SizeError(f"{text} is not a size: a size cannot be negative.")
        return text
    if not isinstance(text, str):
        raise SizeError(f"{text!r} is not a size: {SIZE_HELP}.")
    match = _SIZE.match(text)
    if not match:
        raise SizeError(f"{text.strip()!r} is not a size: {SIZE_HELP}.")
    number, prefix, suffix = match.groups()
    unit = UNITS[prefix.upper()]
    if unit == 1 and "." in number:
        raise SizeError(f"{text.strip()!r} is not a whole number of bytes: {SIZE_HELP}.")
    if suffix and suffix.lower() == "ib" and unit == 1:
        raise SizeError(f"{text.strip()!r} is not a size: {SIZE_HELP}.")
    return round(float(number) * unit)


def format_size(n: int) -> str:
    """Bytes as the budget is written: "24 GB", "1.5 GB", "512 MB" (binary, as `parse_size` reads)."""
    for unit, size in (("TB", TIB), ("GB", GIB), ("MB", MIB), ("KB", KIB)):
        if n >= size:
            value = n / size
            text = f"{value:.0f}" if value >= 100 or value.is_integer() else f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{n} B"


def physical_memory() -> int:
    """This machine's RAM in bytes."""
    return int(psutil.virtual_memory().total)


def _is_macos(system: str) -> bool:
    return system.lower() in ("darwin", "macos")


def default_budget(total_bytes: int, system: str | None = None) -> int:
    """The budget when nobody set one: 75 % of RAM on macOS, RAM less the OS's share elsewhere.

    `system` is `sys.platform` or `platform.system()` spelling ("darwin"/"Darwin", "linux"/"Linux");
    None means this machine. Never below half of RAM on a small Linux machine.
    """
    if _is_macos(system or sys.platform):
        return int(total_bytes * MACOS_FRACTION)
    reserve = max(LINUX_OS_RESERVE, int(total_bytes * LINUX_OS_FRACTION))
    return max(total_bytes - reserve, total_bytes // 2)


def default_source(total_bytes: int, system: str | None = None) -> str:
    """Where the default comes from, in words: "default: 75 % of 32 GB"."""
    if _is_macos(system or sys.platform):
        return f"default: {round(MACOS_FRACTION * 100)} % of {format_size(total_bytes)}"
    left = default_budget(total_bytes, system)
    return f"default: {format_size(total_bytes)} less {format_size(total_bytes - left)} for the system"


def check_budget(value: int | str, total_bytes: int | None = None) -> int:
    """`value` (bytes or a size text) as a budget in range; SizeError with a sentence otherwise."""
    budget = parse_size(value)
    total = physical_memory() if total_bytes is None else total_bytes
    if budget < MIN_BUDGET:
        raise SizeError(f"A memory budget of {format_size(budget)} is too small: give at least 256 MB.")
    ceiling = total * MAX_BUDGET_FACTOR
    if budget > ceiling:
        raise SizeError(
            f"A memory budget of {format_size(budget)} is more than {MAX_BUDGET_FACTOR} x this machine's "
            f"{format_size(total)} of memory: give at most {format_size(ceiling)}."
        )
    return budget


def effective_budget(
    settings: BudgetSettings, config: Config, *, total_bytes: int | None = None, system: str | None = None
) -> tuple[int, str]:
    """(bytes, source) of the budget in force: "environment", "setting" or "default: …".

    `total_bytes` and `system` default to this machine (tests pass them).
    """
    if config.memory_budget is not None:
        return config.memory_budget, "environment"
    if settings.memory_budget is not None:
        return settings.memory_budget, "setting"
    total = physical_memory() if total_bytes is None else total_bytes
    return default_budget(total, system), default_source(total, system)
