"""System memory pressure: is the machine short of memory right now? (issue 14, item 6)

`read_pressure()` returns a `MemoryPressure` with a level ("normal", "warn", "critical"), the
figures and a sentence for the UI. It blocks for at most `SYSCTL_TIMEOUT_S` (one `sysctl` on macOS,
one small file elsewhere): call it from the sampler's worker thread, at 1 Hz at most.

- macOS: the kernel's own verdict, `sysctl -n kern.memorystatus_vm_pressure_level`, which answers
  with the dispatch values of XNU (`NOTE_MEMORYSTATUS_PRESSURE_*` in bsd/sys/event_private.h:
  1 normal, 2 warning, 4 critical), the level Activity Monitor's memory pressure graph shows. Free
  or "available" memory says little on a Mac (it compresses before it swaps), so it only stands
  in when the sysctl cannot be read.
- Linux: pressure stall information, `/proc/pressure/memory` (kernel 4.20+): `some avg10` is the
  share of the last 10 s in which at least one task waited for memory, `full avg10` the share in
  which every runnable task did (thrashing). Thresholds: `PSI_*` below. PSI only rises once tasks
  already wait, so low available memory (psutil) counts too and the worse of the two wins; without
  PSI (old kernels, some containers) available memory alone decides.
- Anything else: available memory alone.

A reading that fails is never reported as "normal" silently: the level falls back to available
memory, the reason says so, and the failure is logged once per distinct problem.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import psutil

from mlxui.servers.memory_budget import format_size

log = logging.getLogger(__name__)

Level = Literal["normal", "warn", "critical"]
LEVELS: tuple[Level, ...] = ("normal", "warn", "critical")

SYSCTL_COMMAND = ("sysctl", "-n", "kern.memorystatus_vm_pressure_level")
SYSCTL_TIMEOUT_S = 1.0
MACOS_LEVELS: dict[int, Level] = {1: "normal", 2: "warn", 4: "critical"}

PSI_PATH = Path("/proc/pressure/memory")
PSI_WARN_SOME = 10.0  # % of the last 10 s some task waited for memory: the system is reclaiming hard
PSI_CRITICAL_SOME = 40.0  # most of the time someone waits: interactive use already suffers
PSI_CRITICAL_FULL = 5.0  # every task stalled 5 % of the time: thrashing

AVAILABLE_WARN = 0.10  # available memory below 10 % of RAM
AVAILABLE_CRITICAL = 0.05  # below 5 %: the OOM killer or heavy swapping is near

SENTENCES: dict[Level, str] = {
    "normal": "The system has memory to spare",
    "warn": "The system is running low on memory",
    "critical": "The system is short of memory",
}

_PSI_LINE = re.compile(r"^(some|full)\s+avg10=(\d+(?:\.\d+)?)\s+avg60=\S+\s+avg300=\S+\s+total=\d+\s*$")


class PressureReadError(Exception):
    """The pressure source could not be read; the message says what happened."""


class MemoryFigures(NamedTuple):
    total_bytes: int
    available_bytes: int
    swap_used_bytes: int


@dataclass(frozen=True)
class MemoryPressure:
    level: Level
    available_bytes: int
    total_bytes: int
    swap_used_bytes: int
    reason: str  # one sentence for the UI: "The system is short of memory (macOS memory pressure: critical)."

    @property
    def under_pressure(self) -> bool:
        """True at "warn" and "critical": new starts should wait or make room first."""
        return self.level != "normal"


Runner = Callable[[Sequence[str], float], str]  # argv, timeout -> stdout; raises PressureReadError


def run_command(argv: Sequence[str], timeout: float) -> str:
    """Run `argv` (never through a shell) and return its stdout; PressureReadError on any failure."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise PressureReadError(f"`{' '.join(argv)}` did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise PressureReadError(f"`{argv[0]}` could not run ({exc.strerror or exc})") from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise PressureReadError(f"`{' '.join(argv)}` failed: {detail[0]}")
    return done.stdout


def system_memory() -> MemoryFigures:
    vm = psutil.virtual_memory()
    return MemoryFigures(int(vm.total), int(vm.available), int(psutil.swap_memory().used))


def read_pressure(
    *,
    system: str | None = None,
    runner: Runner = run_command,
    psi_path: Path = PSI_PATH,
    memory: Callable[[], MemoryFigures] = system_memory,
) -> MemoryPressure:
    """The system's memory pressure now (see the module doc). The keywords are for tests: the
    platform (`sys.platform` spelling), the command runner, the PSI file and the memory figures."""
    figures = memory()
    platform = (system or sys.platform).lower()
    if platform in ("darwin", "macos"):
        try:
            level = parse_macos_level(runner(SYSCTL_COMMAND, SYSCTL_TIMEOUT_S))
        except PressureReadError as exc:
            return _fallback(figures, f"macOS memory pressure unreadable: {exc}")
        _problems.clear("macos")
        return _reading(level, figures, f"macOS memory pressure: {level}")
    if platform.startswith("linux"):
        return _linux(figures, psi_path)
    return _from_available(figures)


def parse_macos_level(text: str) -> Level:
    """`sysctl -n kern.memorystatus_vm_pressure_level` output ("1\\n") as a level."""
    try:
        value = int(text.strip())
    except ValueError as exc:
        raise PressureReadError(f"unexpected sysctl answer {text.strip()[:40]!r}") from exc
    if value not in MACOS_LEVELS:
        raise PressureReadError(f"unknown pressure level {value} (expected 1, 2 or 4)")
    return MACOS_LEVELS[value]


def parse_psi(text: str) -> tuple[float, float]:
    """(`some avg10`, `full avg10`) from /proc/pressure/memory's two lines."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _PSI_LINE.match(line.strip())
        if match:
            values[match[1]] = float(match[2])
    if "some" not in values:
        raise PressureReadError(f"unexpected PSI content {text.strip()[:60]!r}")
    return values["some"], values.get("full", 0.0)  # "full" is absent only on pre-5.x CPU files


def psi_level(some: float, full: float) -> Level:
    if full >= PSI_CRITICAL_FULL or some >= PSI_CRITICAL_SOME:
        return "critical"
    return "warn" if some >= PSI_WARN_SOME else "normal"


def available_level(figures: MemoryFigures) -> Level:
    share = figures.available_bytes / figures.total_bytes if figures.total_bytes else 1.0
    if share < AVAILABLE_CRITICAL:
        return "critical"
    return "warn" if share < AVAILABLE_WARN else "normal"


def _linux(figures: MemoryFigures, psi_path: Path) -> MemoryPressure:
    try:
        text = psi_path.read_text()
    except FileNotFoundError:
        return _from_available(figures)  # no PSI on this kernel: an ordinary case, nothing to log
    except OSError as exc:  # PSI compiled in but switched off (psi=0) answers EOPNOTSUPP
        return _fallback(figures, f"{psi_path} unreadable: {exc.strerror or exc}")
    try:
        some, full = parse_psi(text)
    except PressureReadError as exc:
        return _fallback(figures, f"{psi_path}: {exc}")
    _problems.clear("linux")
    level = psi_level(some, full)
    by_available = available_level(figures)
    if LEVELS.index(by_available) > LEVELS.index(level):
        return _from_available(figures)
    if full >= PSI_CRITICAL_FULL:
        detail = f"Linux PSI: every task stalled on memory {full:g} % of the last 10 s"
    else:
        detail = f"Linux PSI: tasks waited for memory {some:g} % of the last 10 s"
    return _reading(level, figures, detail)


def _from_available(figures: MemoryFigures, note: str = "") -> MemoryPressure:
    detail = f"{format_size(figures.available_bytes)} of {format_size(figures.total_bytes)} available"
    return _reading(available_level(figures), figures, detail + note)


def _fallback(figures: MemoryFigures, problem: str) -> MemoryPressure:
    _problems.report(problem)
    return _from_available(figures, f"; {problem}")


def _reading(level: Level, figures: MemoryFigures, detail: str) -> MemoryPressure:
    return MemoryPressure(
        level,
        figures.available_bytes,
        figures.total_bytes,
        figures.swap_used_bytes,
        f"{SENTENCES[level]} ({detail}).",
    )


class _Problems:
    """Logs a failing source once per distinct message, not at every 1 Hz reading."""

    def __init__(self) -> None:
        self.last: str | None = None

    def report(self, problem: str) -> None:
        if problem != self.last:
            log.warning("memory pressure falls back to available memory: %s", problem)
        self.last = problem

    def clear(self, source: str) -> None:
        if self.last is not None:
            log.info("memory pressure readable again (%s)", source)
        self.last = None


_problems = _Problems()
