"""`CallError`: why a call to a model could not be answered, in words every dialect can render."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CallError(Exception):
    """Why a call could not be answered: HTTP status, a code, the sentence, maybe Retry-After."""

    status: int
    code: str
    message: str
    retry_after: int | None = None

    def __str__(self) -> str:
        return self.message
