"""Recent OpenAI Responses kept in memory, bounded in count and age, for `previous_response_id` and
`GET /v1/responses/{id}`. Nothing is written to disk: a restart forgets them, as the API allows."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_RESPONSES = 200
MAX_AGE_S = 3600.0


@dataclass(frozen=True)
class StoredResponse:
    """A finished response object and the conversation it ended, in OpenAI chat messages (its
    input, previous turns included, then its output; `instructions` are not carried over)."""

    response: dict[str, Any]
    history: list[dict[str, Any]]
    stored_at: float


class ResponseStore:
    """The last `max_items` responses younger than `max_age_s`, oldest dropped first."""

    def __init__(
        self,
        max_items: int = MAX_RESPONSES,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_items = max_items
        self.max_age_s = max_age_s
        self.clock = clock
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, response: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self._expire()
        self._items[response["id"]] = StoredResponse(response, history, self.clock())
        self._items.move_to_end(response["id"])
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        self._expire()
        return self._items.get(response_id)

    def delete(self, response_id: str) -> bool:
        self._expire()
        return self._items.pop(response_id, None) is not None

    def __len__(self) -> int:
        self._expire()
        return len(self._items)

    def _expire(self) -> None:
        oldest_allowed = self.clock() - self.max_age_s
        while self._items:
            first = next(iter(self._items.values()))
            if first.stored_at >= oldest_allowed:
                return
            self._items.popitem(last=False)
