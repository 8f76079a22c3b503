"""How the supervisor tells the rest of the app: listeners of `ServerEvent`s, and the small
background tasks (run-record writes, async listeners) it starts and waits for at shut-down."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from mlxui.servers.state import ServerEvent

logger = logging.getLogger(__name__)

Listener = Callable[[ServerEvent], Any]


class EventHub:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call `callback(event)` for every event; returns the function that unsubscribes."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def emit(self, event: ServerEvent) -> None:
        for callback in list(self._listeners):
            try:
                result = callback(event)
            except Exception:  # a listener's bug must not break the server's state machine
                logger.exception("server change listener %r failed", callback)
                continue
            if inspect.isawaitable(result):
                self.spawn(result)

    def spawn(self, awaitable: Coroutine[Any, Any, Any] | Any) -> None:
        """Run `awaitable` in the background; a failure is logged with its traceback."""

        async def run() -> None:
            await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)

        def finished(done: asyncio.Task[Any]) -> None:
            self._tasks.discard(done)
            if not done.cancelled() and done.exception() is not None:
                logger.error("server background task failed: %s", done.exception(), exc_info=done.exception())

        task.add_done_callback(finished)

    async def drain(self) -> None:
        """Wait for the background tasks started so far (at shut-down)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
