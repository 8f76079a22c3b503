"""The local models as the supervisor last saw them, and when a request may make it look again.

The supervisor rescans after every profile write and finished download (`scan`). A request that
names an unknown model rescans too, so a model put in the cache by another tool or a folder added
with `mlxui models add` answers at once; `may_rescan_for` keeps a client that repeats a wrong name
from rescanning the disk on every request.
"""

from __future__ import annotations

import time
from pathlib import Path

from mlxui.hub.local import LocalEntry, list_local_models
from mlxui.servers.model_defaults import model_ref

SAME_NAME_S = 2.0  # the same unknown name rescans at most this often
FLOOR_S = 0.2  # and no two rescans for unknown names come closer than this
MAX_REMEMBERED = 1000


class LocalCatalog:
    def __init__(self, hf_cache: Path) -> None:
        self.hf_cache = hf_cache
        self.entries: dict[str, LocalEntry] = {}  # by model reference (repo id or folder path)
        self.scanned_at = -SAME_NAME_S
        self._missed: dict[str, float] = {}  # unknown names, when they last made us rescan

    async def scan(self) -> dict[str, LocalEntry]:
        self.entries = {model_ref(e): e for e in await list_local_models(self.hf_cache)}
        self.scanned_at = time.monotonic()
        return self.entries

    def fresh(self, max_age: float) -> bool:
        return time.monotonic() - self.scanned_at < max_age

    def may_rescan_for(self, name: str) -> bool:
        now = time.monotonic()
        if now - self._missed.get(name, -SAME_NAME_S) < SAME_NAME_S or now - self.scanned_at < FLOOR_S:
            return False
        if len(self._missed) > MAX_REMEMBERED:
            self._missed.clear()
        self._missed[name] = now
        return True
