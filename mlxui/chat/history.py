"""What a chat sends to the model: its saved messages turned into OpenAI chat messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxui.chat import images
from mlxui.db.models import Message


def model_history(system_prompt: str, rows: list[Message], images_dir: Path) -> list[dict[str, Any]]:
    """The saved messages as OpenAI chat messages: system prompt first, images as data-URL parts;
    failed and empty replies are left out (they would teach the model to fail)."""
    history: list[dict[str, Any]] = []
    if system_prompt.strip():
        history.append({"role": "system", "content": system_prompt})
    for row in rows:
        if row.role == "assistant":
            if row.status != "failed" and row.content:
                history.append({"role": "assistant", "content": row.content})
        elif row.attachments:
            parts: list[dict[str, Any]] = [{"type": "text", "text": row.content}] if row.content else []
            for attachment in row.attachments:
                try:
                    parts.append(
                        {"type": "image_url", "image_url": {"url": images.data_url(attachment, images_dir)}}
                    )
                except images.ImageError as exc:  # deleted by hand: say so instead of failing the chat
                    parts.append({"type": "text", "text": f"({exc.message})"})
            history.append({"role": row.role, "content": parts})
        else:
            history.append({"role": row.role, "content": row.content})
    return history
