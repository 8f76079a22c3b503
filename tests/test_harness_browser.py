"""The harness says loudly when a missing Chromium skipped the browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSER_TESTS = """
import pytest

def test_page_one(chrome):
    pass

def test_page_two(chrome):
    pass

def test_no_browser():
    pass
"""


def run_pytest(folder: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "CI"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider"],
        cwd=folder, env=base | {"PYTHONPATH": str(ROOT)} | env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_skipped_browser_tests_are_counted_in_a_loud_summary_line(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.harness.fixtures_app"]\n')
    (tmp_path / "test_pages.py").write_text(BROWSER_TESTS)
    no_browser = tmp_path / "empty-bin"  # a PATH on which neither chromium nor chromedriver is found
    no_browser.mkdir()
    result = run_pytest(tmp_path, PATH=str(no_browser))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 2 skipped" in result.stdout
    summary = [line for line in result.stdout.splitlines() if "BROWSER TESTS SKIPPED" in line]
    assert len(summary) == 1 and summary[0].strip("! ") == (
        "BROWSER TESTS SKIPPED: 2 tests need chromium + chromedriver (apt-get install chromium chromium-driver)"
    ), result.stdout

    (tmp_path / "test_pages.py").write_text("def test_no_browser():\n    pass\n")
    quiet = run_pytest(tmp_path, PATH=str(no_browser))
    assert quiet.returncode == 0 and "BROWSER TESTS SKIPPED" not in quiet.stdout, "nothing to say"
