"""One chat message. An assistant reply can stream into it. Each redraw resends the open tail over
the websocket, so redraws are paced by how much text arrived, not by the clock alone: the first
text at once, then when RENDER_MIN_CHARS new characters are in (at most every RENDER_MIN_S) or
RENDER_MAX_S passed. A 1,000-token reply thus costs about the same bytes at 10 or 1,000 tok/s.
Finished markdown blocks are frozen into their own elements, so a redraw never resends them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nicegui import ui

from mlxui.chat.reply import STOPPED
from mlxui.chat.store import MessageInfo
from mlxui.ui.components.safe_markdown import SafeMarkdown
from mlxui.ui.testid import testid

RENDER_MIN_S = 0.1
RENDER_MAX_S = 0.5
RENDER_MIN_CHARS = 48
RATE_AFTER_S = 0.25  # tok/s is shown once it means something


class ChatMessage(ui.column):
    def __init__(
        self, message: MessageInfo | None, *, role: str = "assistant", images_url: Callable[[dict], str]
    ):
        super().__init__()
        self.role = message.role if message else role
        self.images_url = images_url
        self.classes("w-full gap-1 " + ("items-end" if self.role == "user" else "items-start"))
        testid(self, f"message-{self.role}")
        self._frozen_upto = 0
        self._rendered_at = 0.0
        self._rendered_chars = 0
        self._thinking_started: float | None = None
        self._first_token_at: float | None = None
        self._tokens = 0  # text events so far: mlx servers send one per generated token
        self.stopped = False  # a reply cut short (Stop, or mlxui quit): it can be continued
        with self:
            bubble_classes = "max-w-[85%] rounded-lg px-4 py-2 gap-1 "
            bubble_classes += "bg-indigo-500/20" if self.role == "user" else "w-full bg-slate-500/10"
            with ui.column().classes(bubble_classes) as self.bubble:
                self.images = ui.row().classes("gap-2")
                self.thinking = testid(
                    ui.expansion("Thinking", icon="psychology").classes("w-full text-sm"), "thinking"
                )
                with self.thinking:
                    self.reasoning_md = testid(SafeMarkdown().classes("text-sm text-slate-400"), "reasoning")
                self.thinking.set_visibility(False)
                self.body = ui.column().classes("w-full gap-0 mlxui-md")
                with self.body:
                    self.live = SafeMarkdown().classes("w-full")
            # the status while streaming, then the metrics (slate-600: 4.5:1 on the light page)
            self.footer = testid(
                ui.label().classes("text-xs text-slate-600 dark:text-slate-400"), "message-metrics"
            )
            self.error = testid(ui.label().classes("text-xs text-red-400"), "message-error")
            self.error.set_visibility(False)
            self.actions = ui.row().classes("gap-1")
        if message is not None:
            self.show_final(message)

    # ----- streaming -----------------------------------------------------------------------------------
    def stream(self, reasoning: str, content: str, *, force: bool = False) -> None:
        """New text arrived (one call per text event); redraw when it is worth the bytes (see the
        module's docstring) or `force`."""
        now = time.monotonic()
        self._tokens += 1
        if self._first_token_at is None:
            self._first_token_at = now
        chars = len(reasoning) + len(content)
        if not force and self._rendered_chars:
            waited = now - self._rendered_at
            if waited < RENDER_MIN_S or (
                chars - self._rendered_chars < RENDER_MIN_CHARS and waited < RENDER_MAX_S
            ):
                return
        self._rendered_at, self._rendered_chars = now, chars
        if reasoning:
            if self._thinking_started is None:
                self._thinking_started = now
                self.thinking.set_visibility(True)
                self.thinking.value = True  # open while thinking
            self.reasoning_md.content = reasoning
        self._render_content(content)
        self.footer.text = self._progress(now)

    def waiting(self, text: str) -> None:
        self.footer.text = text
        self.props("data-status=streaming")

    def _progress(self, now: float) -> str:
        """'42 tokens · 35.1 tok/s' while a reply streams."""
        text = f"{self._tokens} token{'s' if self._tokens != 1 else ''}"
        elapsed = now - (self._first_token_at or now)
        if elapsed >= RATE_AFTER_S:
            text += f" · {(self._tokens - 1) / elapsed:.1f} tok/s"
        return text

    def _render_content(self, content: str) -> None:
        boundary = _last_block_boundary(content, self._frozen_upto)
        if boundary > self._frozen_upto:
            with self.body:
                frozen = SafeMarkdown(content[self._frozen_upto : boundary]).classes("w-full")
            frozen.move(self.body, target_index=len(self.body.default_slot.children) - 2)
            self._frozen_upto = boundary
        self.live.content = content[self._frozen_upto :]

    # ----- final state ---------------------------------------------------------------------------------
    def show_final(self, message: MessageInfo) -> None:
        self.body.clear()
        self._frozen_upto = 0
        with self.body:
            typed = message.role == "user"  # a person's line breaks are kept as typed
            self.live = testid(
                SafeMarkdown(message.content, hard_breaks=typed).classes("w-full"), "message-content"
            )
        if message.reasoning:
            self.thinking.set_visibility(True)
            self.reasoning_md.content = message.reasoning
            self.thinking.value = False  # collapsed afterwards
            seconds = (message.metrics or {}).get("thinking_s")
            if seconds is None:
                self.thinking.text = "Thinking"
            else:
                self.thinking.text = f"Thought for {seconds:.1f} s" if seconds >= 0.05 else "Thought briefly"
        self.images.clear()
        with self.images:
            for attachment in message.attachments:
                ui.image(self.images_url(attachment)).classes("w-40 rounded")
        metrics = describe_metrics(message.metrics) if message.role == "assistant" else ""
        self.props(f"data-status={message.status}")
        self.error.set_visibility(False)
        self.stopped = message.role == "assistant" and message.status == "partial"
        if self.stopped:  # stopped by the user, or mlxui quit mid-reply: not an error
            reason = "Stopped" if message.error in (None, STOPPED) else message.error.rstrip(".")
            metrics = " · ".join(p for p in (reason, metrics) if p)
        elif message.status == "failed" and message.error:
            self.error.text = "Failed: " + message.error
            self.error.set_visibility(True)
        self.footer.text = metrics


def describe_metrics(metrics: dict[str, Any]) -> str:
    """'0.12 s to first token · 812.3 tok/s · 23 prompt + 9 completion tokens · model'"""
    if not metrics:
        return ""
    parts = []
    if metrics.get("ttft_s") is not None:
        parts.append(f"{metrics['ttft_s']:.2f} s to first token")
    if metrics.get("tokens_per_s"):
        parts.append(f"{metrics['tokens_per_s']:.1f} tok/s")
    if metrics.get("prompt_tokens") is not None:
        parts.append(
            f"{metrics['prompt_tokens']} prompt + {metrics.get('completion_tokens', 0)} completion tokens"
        )
    elif metrics.get("completion_tokens"):  # a stopped reply: the server never sent its usage
        parts.append(f"{metrics['completion_tokens']} tokens")
    if metrics.get("model"):
        parts.append(str(metrics["model"]))
    return " · ".join(parts)


def _last_block_boundary(text: str, start: int) -> int:
    """End of the last finished markdown block (a blank line outside a code fence) after `start`."""
    best = start
    in_fence = text[:start].count("```") % 2 == 1
    i = start
    while True:
        fence = text.find("```", i)
        blank = text.find("\n\n", i)
        if blank == -1:
            return best
        if fence != -1 and fence < blank:
            in_fence = not in_fence
            i = fence + 3
            continue
        if not in_fence:
            best = blank + 2
        i = blank + 2


def image_url_for(images_dir: Path) -> Callable[[dict], str]:
    def url(attachment: dict) -> str:
        return f"/chat-images/{Path(attachment['path']).name}"

    return url
