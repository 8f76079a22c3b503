"""Where the "Chat" and "Create profile" actions lead, so every place that offers them agrees.

The chat page takes any name of a model in `server` (repo id, short name, folder or profile name);
the Servers page opens the new-profile editor prefilled with `model`."""

from __future__ import annotations

from urllib.parse import quote


def chat_url(model: str) -> str:
    """`/chat?server=org/name`: a chat with this model (started on demand)."""
    return f"/chat?server={quote(model, safe='/')}"


def new_profile_url(model: str) -> str:
    """`/servers?model=...`: the new-profile editor, prefilled with this model."""
    return f"/servers?model={quote(model, safe='')}"
