"""A bandwidth limit shared by every connection of every download (a token bucket), and its parser.

Workers are threads: `take(n, stop)` blocks the calling thread until `n` more bytes fit under the
limit (or `stop` is set). The limit can change while downloads run (Settings, the API); 0 means
no limit.
"""

from __future__ import annotations

import re
import threading
import time

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}  # fmt: skip
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)\s*(?:/\s*s|ps)?\s*", re.IGNORECASE)
BURST_S = 0.25  # how far ahead of the limit a burst may run


class RateLimiter:
    """`parent`: a limit this one also obeys (one download's own limit under the global one)."""

    def __init__(self, bytes_per_s: float = 0, parent: RateLimiter | None = None) -> None:
        self.parent = parent
        self._lock = threading.Lock()
        self._rate = max(0.0, float(bytes_per_s))
        self._next = time.monotonic()  # when the bucket is empty again

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, bytes_per_s: float) -> None:
        with self._lock:
            self._rate = max(0.0, float(bytes_per_s))
            self._next = time.monotonic()

    def take(self, n: int, stop: threading.Event) -> None:
        """Account for `n` bytes just read; sleeps so the average stays under the limit."""
        delay = 0.0
        with self._lock:
            if self._rate > 0:
                now = time.monotonic()
                self._next = max(self._next, now - BURST_S) + n / self._rate
                delay = self._next - now
        if delay > 0:
            stop.wait(delay)
        if self.parent is not None:
            self.parent.take(n, stop)

    def limited(self) -> bool:
        """Is there a limit here or above?"""
        return self._rate > 0 or (self.parent is not None and self.parent.limited())


def parse_rate(text: str) -> int:
    """'50MB/s', '2.5 MiB', '800k', '0' -> bytes per second (decimal units; KiB/MiB/GiB binary).

    Raises ValueError with a sentence for anything else.
    """
    m = _RATE.fullmatch(text or "")
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a rate; write it like 50MB/s, 800KB/s or 0 for no limit.")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_rate(bytes_per_s: float) -> str:
    if bytes_per_s <= 0:
        return "no limit"
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("KB/s", 1e3)):
        if bytes_per_s >= scale:
            return f"{bytes_per_s / scale:.3g} {unit}"
    return f"{int(bytes_per_s)} B/s"
