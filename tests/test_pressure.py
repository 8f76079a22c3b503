"""System memory pressure (servers/pressure.py): macOS through a fake runner and a fake `sysctl`
on PATH, Linux through PSI file contents shaped like /proc/pressure/memory, and the fallbacks."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from mlxui.servers import pressure
from mlxui.servers.memory_budget import GIB
from mlxui.servers.pressure import (
    SYSCTL_COMMAND,
    MemoryFigures,
    PressureReadError,
    read_pressure,
    run_command,
)

FAKEBIN = Path(__file__).parent / "fakebin"
ROOMY = MemoryFigures(total_bytes=32 * GIB, available_bytes=20 * GIB, swap_used_bytes=0)
TIGHT = MemoryFigures(total_bytes=32 * GIB, available_bytes=2 * GIB, swap_used_bytes=3 * GIB)  # 6 %
STARVED = MemoryFigures(total_bytes=32 * GIB, available_bytes=GIB, swap_used_bytes=9 * GIB)  # 3 %


def psi(some: float, full: float) -> str:
    """/proc/pressure/memory as Linux writes it (Documentation/accounting/psi.rst)."""
    return (
        f"some avg10={some:.2f} avg60=1.52 avg300=0.41 total=18475239\n"
        f"full avg10={full:.2f} avg60=0.87 avg300=0.20 total=9961027\n"
    )


def sysctl_answering(stdout: str, calls: list[Sequence[str]] | None = None):
    def runner(argv: Sequence[str], timeout: float) -> str:
        if calls is not None:
            calls.append(list(argv))
        assert timeout <= 2, "a 1 Hz sampler cannot wait long"
        return stdout

    return runner


def sysctl_failing(message: str):
    def runner(argv: Sequence[str], timeout: float) -> str:
        raise PressureReadError(message)

    return runner


def macos(runner, figures: MemoryFigures = ROOMY):
    return read_pressure(system="darwin", runner=runner, memory=lambda: figures)


def linux(tmp_path: Path, content: str | None, figures: MemoryFigures = ROOMY):
    path = tmp_path / "memory"
    if content is not None:
        path.write_text(content)
    return read_pressure(system="linux", psi_path=path, memory=lambda: figures)


@pytest.mark.parametrize(
    ("stdout", "level", "sentence"),
    [
        ("1\n", "normal", "The system has memory to spare (macOS memory pressure: normal)."),
        ("2\n", "warn", "The system is running low on memory (macOS memory pressure: warn)."),
        ("4\n", "critical", "The system is short of memory (macOS memory pressure: critical)."),
    ],
)
def test_macos_levels_come_from_the_kernel(stdout: str, level: str, sentence: str) -> None:
    calls: list[Sequence[str]] = []
    reading = macos(sysctl_answering(stdout, calls), TIGHT)
    assert calls == [["sysctl", "-n", "kern.memorystatus_vm_pressure_level"]], "list args, no shell"
    assert (reading.level, reading.reason) == (level, sentence)
    assert reading.under_pressure is (level != "normal")
    assert (reading.available_bytes, reading.total_bytes, reading.swap_used_bytes) == (
        2 * GIB,
        32 * GIB,
        3 * GIB,
    )


def test_macos_ignores_low_available_memory_when_the_kernel_says_normal() -> None:
    """A healthy Mac shows little free memory (it compresses); the kernel's level decides."""
    assert macos(sysctl_answering("1\n"), STARVED).level == "normal"


@pytest.mark.parametrize(
    ("runner", "problem"),
    [
        (sysctl_answering("garbage\n"), "unexpected sysctl answer 'garbage'"),
        (sysctl_answering("3\n"), "unknown pressure level 3 (expected 1, 2 or 4)"),
        (sysctl_answering(""), "unexpected sysctl answer ''"),
        (
            sysctl_failing("`sysctl -n kern.memorystatus_vm_pressure_level` did not answer within 1 s"),
            "within 1 s",
        ),
    ],
)
def test_an_unreadable_macos_level_falls_back_to_available_memory_and_says_so(
    runner, problem, caplog
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlxui.servers.pressure"):
        reading = macos(runner, STARVED)
        again = macos(runner, STARVED)
    assert reading.level == "critical", "1 GB of 32 GB available is critical"
    assert reading.reason.startswith(
        "The system is short of memory (1 GB of 32 GB available; macOS memory pressure"
    )
    assert problem in reading.reason and again == reading
    assert len([r for r in caplog.records if problem in r.getMessage()]) == 1, "logged once, not every second"
    assert macos(sysctl_answering("1\n")).level == "normal", "and recovers at once"


@pytest.mark.parametrize(
    ("some", "full", "level", "detail"),
    [
        (0.0, 0.0, "normal", "tasks waited for memory 0 % of the last 10 s"),
        (9.99, 0.5, "normal", "tasks waited for memory 9.99 % of the last 10 s"),
        (12.5, 1.0, "warn", "tasks waited for memory 12.5 % of the last 10 s"),
        (45.0, 2.0, "critical", "tasks waited for memory 45 % of the last 10 s"),
        (20.0, 7.25, "critical", "every task stalled on memory 7.25 % of the last 10 s"),
    ],
)
def test_linux_levels_from_psi(tmp_path: Path, some: float, full: float, level: str, detail: str) -> None:
    reading = linux(tmp_path, psi(some, full))
    assert reading.level == level
    assert reading.reason == f"{pressure.SENTENCES[level]} (Linux PSI: {detail})."  # type: ignore[index]


def test_linux_low_available_memory_wins_over_quiet_psi(tmp_path: Path) -> None:
    """PSI rises only once tasks wait; 6 % of RAM available is already a warning."""
    reading = linux(tmp_path, psi(0, 0), TIGHT)
    assert (reading.level, reading.reason) == (
        "warn",
        "The system is running low on memory (2 GB of 32 GB available).",
    )


def test_without_psi_available_memory_decides_quietly(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="mlxui.servers.pressure"):
        assert (
            linux(tmp_path, None, ROOMY).reason
            == "The system has memory to spare (20 GB of 32 GB available)."
        )
        assert linux(tmp_path, None, TIGHT).level == "warn"
        assert linux(tmp_path, None, STARVED).level == "critical"
    assert not caplog.records, "a kernel without PSI is normal, not a problem"


@pytest.mark.parametrize("content", ["", "hello\n", "some avg10=abc avg60=0 avg300=0 total=0\n"])
def test_garbage_psi_falls_back_and_says_so(tmp_path: Path, content: str) -> None:
    reading = linux(tmp_path, content, TIGHT)
    assert reading.level == "warn"
    assert "unexpected PSI content" in reading.reason and reading.reason.endswith(").")


def test_other_systems_use_available_memory() -> None:
    reading = read_pressure(system="win32", memory=lambda: STARVED)
    assert reading.level == "critical"


def test_the_real_sysctl_path_with_a_fake_sysctl_on_path(monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKEBIN}:/usr/bin:/bin")
    for value, level in (("1", "normal"), ("2", "warn"), ("4", "critical")):
        monkeypatch.setenv("FAKE_SYSCTL_PRESSURE", value)
        assert read_pressure(system="darwin", memory=lambda: ROOMY).level == level
    monkeypatch.setenv("FAKE_SYSCTL_DELAY", "5")
    started = time.monotonic()
    with pytest.raises(PressureReadError, match=r"did not answer within 0.3 s"):
        run_command(SYSCTL_COMMAND, 0.3)
    assert time.monotonic() - started < 3
    monkeypatch.delenv("FAKE_SYSCTL_DELAY")
    with pytest.raises(PressureReadError, match=r"failed: sysctl: unknown oid 'vm.nonsense'"):
        run_command(["sysctl", "-n", "vm.nonsense"], 2)
    monkeypatch.setenv("PATH", "/nonexistent")
    reading = read_pressure(system="darwin", memory=lambda: ROOMY)
    assert reading.level == "normal" and "`sysctl` could not run" in reading.reason


def test_this_machine_reads_cheaply_enough_for_one_hertz() -> None:
    read_pressure()
    started = time.perf_counter()
    for _ in range(20):
        reading = read_pressure()
    per_call = (time.perf_counter() - started) / 20
    assert per_call < 0.05, f"{per_call * 1000:.1f} ms per reading"
    assert reading.total_bytes > 0 and 0 < reading.available_bytes <= reading.total_bytes
    assert reading.level in ("normal", "warn", "critical")


def test_subprocess_is_never_given_a_shell(monkeypatch) -> None:
    seen: dict[str, object] = {}

    def fake_run(argv, **kwargs):
        seen.update(kwargs, argv=argv)
        return subprocess.CompletedProcess(argv, 0, "2\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert run_command(SYSCTL_COMMAND, 1.0) == "2\n"
    assert seen["argv"] == list(SYSCTL_COMMAND) and "shell" not in seen and seen["timeout"] == 1.0
