"""A request's `keep_alive`, as Ollama clients send it, and the idle limit it sets for a server.

`keep_alive` in a chat or completion body says how long the model stays loaded after this answer:
a number of seconds (`300`, `2.5`), or a duration (`"30s"`, `"5m"`, `"1h30m"`, `"500ms"`, also a
bare number as a string); `0` stops the server right after the answer, a negative value keeps it
loaded (no idle stop). The gateway removes the field before forwarding (mlx_lm does not know it)
and sets it on the server, where it replaces the profile's `idle_ttl` until another request
carrying `keep_alive` changes it or the server stops (docs/architecture.md §4).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from mlxui.servers.state import ServerState

if TYPE_CHECKING:
    from mlxui.servers.process import ManagedServer

KEEP_LOADED = math.inf  # a negative keep_alive: never stopped for being idle
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"\d+\.?\d*|\.\d+")
_PART = re.compile(rf"({_NUMBER.pattern})(ns|us|µs|μs|ms|s|m|h)")
_HINT = (
    'keep_alive takes seconds or a duration like "30s", "5m" or "1h30m" '
    "(0 stops the model after this answer, a negative value keeps it loaded)"
)


class KeepAliveError(ValueError):
    """A `keep_alive` the gateway refuses; the message is the sentence the client gets."""


def parse_keep_alive(value: object) -> float:
    """Seconds to keep the model loaded after the answer: 0 = stop it right after,
    `KEEP_LOADED` (infinity) = never stop it for being idle. Raises KeepAliveError."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise KeepAliveError(f"{_HINT}; got {_shown(value)}.")
    try:
        seconds = _duration(value.strip()) if isinstance(value, str) else float(value)
    except OverflowError:  # a JSON integer hundreds of digits long
        seconds = None
    if seconds is None or math.isnan(seconds) or seconds == math.inf:
        raise KeepAliveError(f"{_HINT}; got {_shown(value)}.")
    return KEEP_LOADED if seconds < 0 else seconds


def idle_limit(server: ManagedServer) -> float | None:
    """Seconds without a request after which the idle stop ends `server`, or None for never.

    A request's `keep_alive` applies to any server, also one a user started; without one, the
    profile's `idle_ttl` applies to servers started on demand only."""
    if server.keep_alive is not None:
        return None if server.keep_alive == KEEP_LOADED else server.keep_alive
    ttl = server.profile.idle_ttl
    return float(ttl) if server.on_demand and ttl else None


def over_idle_limit(server: ManagedServer, idle_s: float) -> bool:
    """True when a READY server has been idle for `idle_s` seconds, longer than its limit."""
    limit = idle_limit(server)
    return server.state == ServerState.READY and limit is not None and idle_s > limit


def _duration(text: str) -> float | None:
    """Go's duration syntax (what Ollama accepts), plus a bare number of seconds; None if neither."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in ("+", "-") else text
    if _NUMBER.fullmatch(body):
        return sign * float(body)
    total, at = 0.0, 0
    while at < len(body):
        part = _PART.match(body, at)
        if part is None:
            return None
        total += float(part[1]) * _UNITS[part[2]]
        at = part.end()
    return sign * total if body else None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
