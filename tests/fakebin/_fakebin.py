"""Shared by the fake `launchctl` and `systemctl`: call log, persistent state, forced failures.

Environment:
  FAKEBIN_LOG    file; each call appends one JSON line {"tool": ..., "argv": [...]}
  FAKEBIN_STATE  JSON file holding what the fake service manager has loaded/enabled
  FAKEBIN_FORCE  "VERB:CODE:MESSAGE" makes calls of VERB print MESSAGE to stderr and exit CODE:
                 every call, or only the first N with FAKEBIN_FORCE_TIMES=N
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def record(tool: str, argv: list[str]) -> None:
    log = os.environ.get("FAKEBIN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"tool": tool, "argv": argv}) + "\n")


def forced(verb: str) -> None:
    """Exit as scripted when FAKEBIN_FORCE names this verb."""
    spec = os.environ.get("FAKEBIN_FORCE", "")
    name, _, rest = spec.partition(":")
    if name and name == verb:
        times = os.environ.get("FAKEBIN_FORCE_TIMES")
        if times is not None:
            counter = Path(os.environ["FAKEBIN_STATE"] + ".forced")
            done = int(counter.read_text()) if counter.is_file() else 0
            if done >= int(times):
                return
            counter.write_text(str(done + 1))
        code, _, message = rest.partition(":")
        if message:
            print(message, file=sys.stderr)
        raise SystemExit(int(code))


def load_state(default: dict[str, Any]) -> dict[str, Any]:
    path = os.environ.get("FAKEBIN_STATE")
    if path and Path(path).is_file():
        return {**default, **json.loads(Path(path).read_text())}
    return dict(default)


def save_state(state: dict[str, Any]) -> None:
    path = os.environ.get("FAKEBIN_STATE")
    if path:
        Path(path).write_text(json.dumps(state))


def fail(code: int, message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(code)
