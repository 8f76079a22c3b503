"""Counting a conversation's prompt tokens with the model's own tokenizer and chat template.

The count is what the model server will see: the same template rendered with the generation
prompt and tokenized, after the same normalisation mlx_lm.server applies first (text parts joined
into one string, tool-call arguments as objects). Tokenizers load from the model's local folder
in a worker thread, once per folder (a few are kept).
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEEP_TOKENIZERS = 8


class TokenCountError(Exception):
    """The model's chat template could not render the conversation."""


class TokenizerUnavailable(TokenCountError):
    """The model's tokenizer could not be loaded from its folder."""


class TokenCounter:
    def __init__(self) -> None:
        self._tokenizers: OrderedDict[Path, Any] = OrderedDict()
        self._lock = threading.Lock()

    async def count(
        self, folder: Path, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> int:
        return await asyncio.to_thread(self._count, folder, messages, tools)

    async def count_text(self, folder: Path, text: str) -> int:
        """A plain prompt's tokens (as `/v1/completions` sends it: no chat template)."""
        return await asyncio.to_thread(lambda: len(self._tokenizer(folder).encode(text)))

    def _count(self, folder: Path, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        tokenizer = self._tokenizer(folder)
        try:
            ids = tokenizer.apply_chat_template(
                _as_server_renders(messages), tools=tools or None, add_generation_prompt=True, tokenize=True
            )
        except Exception as exc:  # jinja2 and tokenizer errors have no common base: report any
            raise TokenCountError(
                f"the model's chat template cannot render this conversation: {exc}"
            ) from exc
        if isinstance(ids, Mapping):  # transformers 5 answers a BatchEncoding
            ids = ids["input_ids"]
        return len(ids)

    def _tokenizer(self, folder: Path) -> Any:
        with self._lock:  # one load per folder, even when two requests ask at once
            if folder in self._tokenizers:
                self._tokenizers.move_to_end(folder)
                return self._tokenizers[folder]
            from transformers import AutoTokenizer  # slow to import: only once counting is asked for

            try:
                tokenizer = AutoTokenizer.from_pretrained(str(folder))
            except (OSError, ValueError) as exc:
                raise TokenizerUnavailable(f"cannot load the tokenizer from {folder}: {exc}") from exc
            self._tokenizers[folder] = tokenizer
            while len(self._tokenizers) > KEEP_TOKENIZERS:
                self._tokenizers.popitem(last=False)
            return tokenizer


def _as_server_renders(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What mlx_lm.server hands its template: text parts joined (images stay parts), tool-call
    arguments decoded, null content as ""."""
    out = copy.deepcopy(messages)
    for message in out:
        content = message.get("content")
        if isinstance(content, list) and all(part.get("type") == "text" for part in content):
            message["content"] = "".join(part["text"] for part in content)
        elif content is None:
            message["content"] = ""
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            if isinstance(function.get("arguments"), str):
                try:
                    function["arguments"] = json.loads(function["arguments"])
                except json.JSONDecodeError as exc:
                    raise TokenCountError(f"tool call arguments are not JSON: {exc}") from exc
    return out
