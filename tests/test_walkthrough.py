"""The first-run walkthrough (`scripts/walkthrough`): what a new user does, end to end, in Chromium,
against the real app and a fake Hub: search, download, profile, start, chat with thinking, chat
with an image on a vision model, stop. It must keep working, or the README's screenshots go stale."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.harness import smollm2
from tests.harness.browser import chromium_paths
from tests.harness.fixtures_smollm2 import SMOLLM2_MISSING

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["01-models", "02-search", "03-downloading", "04-local", "05-profile", "06-server",
         "07-chat-thinking", "08-chat-real", "09-chat-vision", "10-stopped"]  # fmt: skip


@pytest.mark.browser
def test_the_first_run_walkthrough_completes_with_a_screenshot_per_step(tmp_path: Path) -> None:
    if chromium_paths() is None and os.environ.get("CI") != "true":
        pytest.skip("chromium and chromium-driver are not installed")
    try:
        smollm2.find_wheel()  # the walk chats with the real SmolLM2 too
    except smollm2.WheelProblem as problem:
        pytest.skip(f"{SMOLLM2_MISSING}: {problem}")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import walkthrough
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    shots = tmp_path / "shots"
    walkthrough.run(shots, tmp_path / "work")  # raises at the first step a user could not complete
    assert sorted(p.stem for p in shots.glob("*.png")) == STEPS
    for step in STEPS:
        with Image.open(shots / f"{step}.png") as image:
            colours = image.convert("RGB").getcolors(maxcolors=100_000)
            assert colours is None or len(colours) > 50, f"{step} looks blank"
    # the README shows the screenshots the walkthrough writes
    readme = (ROOT / "README.md").read_text()
    assert all(f"docs/screenshots/{step}.png" in readme for step in STEPS)
    assert all((ROOT / "docs" / "screenshots" / f"{step}.png").exists() for step in STEPS)
