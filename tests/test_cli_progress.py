"""The progress of `mlxui models pull` (tqdm): a log or a pipe gets whole lines that end at 100 %;
a terminal gets one line redrawn in place that is ended, not left dangling, when the pull stops."""

from __future__ import annotations

import io
from types import SimpleNamespace

from mlxui.cli.progress_bar import ProgressBar

REPO = "org/name"
TOTAL = 6_000_000


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def step(bar: ProgressBar, done: int, note: str = "") -> None:
    bar.update(
        SimpleNamespace(bytes_done=done, bytes_total=TOTAL, current_file="model.safetensors", note=note)
    )


def test_without_a_terminal_progress_is_whole_lines_ending_at_100_percent() -> None:
    out = io.StringIO()
    bar = ProgressBar(REPO, out, interval=3600)  # after the first line, no other is due for an hour
    bar.update(SimpleNamespace(bytes_done=0, bytes_total=0, current_file="", note=""))  # not planned yet
    step(bar, 1_000_000)
    step(bar, 2_000_000, note="The connection to the Hub dropped. Retrying in 1 s (attempt 2 of 6).")
    step(bar, 4_500_000)
    bar.finish()
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0].startswith(f"{REPO}:  16.7% ")  # the first line as soon as the size is known
    assert "  The connection to the Hub dropped. Retrying in 1 s (attempt 2 of 6)." in lines
    assert lines[-1].startswith(f"{REPO}: 100.0% 6.00MB / 6.00MB")  # the end is drawn, whatever the interval
    assert sum("100.0%" in line for line in lines) == 1


def test_a_resumed_pull_starts_from_the_bytes_on_disk() -> None:
    out = io.StringIO()
    bar = ProgressBar(REPO, out)
    step(bar, 5_400_000)
    bar.finish()
    first, last = out.getvalue().splitlines()
    assert first.startswith(f"{REPO}:  90.0% ") and last.startswith(f"{REPO}: 100.0% ")


def test_on_a_terminal_the_bar_is_redrawn_in_place_and_ended_when_the_pull_stops() -> None:
    out = Terminal()
    bar = ProgressBar(REPO, out)
    for done in range(0, 3_000_001, 500_000):
        step(bar, done)
    bar.interrupted()  # Ctrl-C: the error message must start on a line of its own
    text = out.getvalue()
    assert text.count("\r") >= 2 and text.endswith("\n") and text.count("\n") == 1
    assert "model.safetensors" in text and f"{REPO}:" in text
    assert bar.bytes_done == 3_000_000 and bar.bytes_total == TOTAL  # what the Ctrl-C message reports
