"""One assistant reply being written to the database while it streams.

`ChatStore.start_reply()` creates the row (status "partial", reason "interrupted") and returns a
`ReplyHandle`; the handle saves the text every `autosave_s` and writes the outcome once:
`complete()`, `stop()` (status "partial") or `fail()` (status "failed", text kept).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlxui.chat.client import ReplyMetrics
from mlxui.chat.thinking import ReplyText
from mlxui.db.models import Chat, Message

STOPPED = "Stopped by user."


@dataclass(frozen=True)
class MessageInfo:
    id: int
    chat_id: int
    role: str  # "user" | "assistant"
    content: str
    reasoning: str | None
    attachments: list[dict[str, Any]]
    metrics: dict[str, Any]
    status: str  # "complete" | "partial" (stopped or interrupted) | "failed"
    error: str | None
    created_at: datetime


@dataclass
class ReplyHandle:
    """An assistant reply being written. `add()`/`feed()` take text (client events or thinking
    segments); the row is saved every `autosave_s`; finish with complete / stop / fail once."""

    message_id: int
    chat_id: int
    autosave_s: float = 2.0
    text: ReplyText = field(default_factory=ReplyText, init=False)
    status: str = field(default="streaming", init=False)  # then "complete" | "partial" | "failed"
    _saved_at: float = field(default_factory=time.monotonic, init=False, repr=False)
    _dirty: bool = field(default=False, init=False, repr=False)

    @property
    def content(self) -> str:
        return self.text.content

    @property
    def reasoning(self) -> str:
        return self.text.reasoning

    def add(self, piece: Any) -> bool:
        """Apply a text event; False (and nothing changes) for events that carry no text."""
        if getattr(piece, "kind", None) not in ("reasoning", "content", "reclassify"):
            return False
        self.text.add(piece)
        self._dirty = True
        return True

    async def feed(self, piece: Any) -> bool:
        """`add()` then save if the last save is `autosave_s` old; True when text changed."""
        changed = self.add(piece)
        if changed and time.monotonic() - self._saved_at >= self.autosave_s:
            await self.save()
        return changed

    async def save(self) -> None:
        """Write the text so far (status stays "partial", reason "interrupted")."""
        if not self._dirty:
            return
        self._saved_at = time.monotonic()
        self._dirty = False
        await Message.filter(id=self.message_id).update(
            content=self.content, reasoning=self.reasoning or None
        )

    async def complete(self, metrics: ReplyMetrics | dict[str, Any] | None = None) -> MessageInfo:
        return await self._finish("complete", None, metrics)

    async def stop(
        self, reason: str = STOPPED, metrics: ReplyMetrics | dict[str, Any] | None = None
    ) -> MessageInfo:
        return await self._finish("partial", reason, metrics)

    async def fail(self, error: str, metrics: ReplyMetrics | dict[str, Any] | None = None) -> MessageInfo:
        """The reply failed; text received so far is kept with the error."""
        return await self._finish("failed", error, metrics)

    async def _finish(self, status: str, error: str | None, metrics: Any) -> MessageInfo:
        if self.status == "streaming":  # the first outcome wins; later calls only read the row
            self.status = status
            data = metrics.to_dict() if isinstance(metrics, ReplyMetrics) else dict(metrics or {})
            await Message.filter(id=self.message_id).update(
                content=self.content,
                reasoning=self.reasoning or None,
                status=status,
                error=error,
                metrics=data,
            )
            await Chat.filter(id=self.chat_id).update(updated_at=datetime.now(UTC))
        return message_info(await Message.get(id=self.message_id))


def message_info(m: Message) -> MessageInfo:
    return MessageInfo(
        id=m.id, chat_id=m.chat_id, role=m.role, content=m.content, reasoning=m.reasoning,  # type: ignore[attr-defined]
        attachments=list(m.attachments or []), metrics=dict(m.metrics or {}), status=m.status,
        error=m.error, created_at=m.created_at,
    )  # fmt: skip
