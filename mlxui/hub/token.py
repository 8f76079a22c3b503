"""The Hugging Face token, kept in huggingface_hub's own token store (shared with every HF tool)."""

from __future__ import annotations

import asyncio
import os

from huggingface_hub import HfApi, get_token, login, logout
from huggingface_hub.errors import HfHubHTTPError

from mlxui.hub.errors import HUB_ERRORS, HubError, hub_error


def masked_token() -> str | None:
    """'hf_…abcd' for the token in use, None when there is none."""
    token = get_token()
    if not token:
        return None
    return f"{token[:3]}…{token[-4:]}" if len(token) > 8 else "…"


def token_from_environment() -> bool:
    """A token in HF_TOKEN wins over the stored one, so the UI says so instead of pretending."""
    return bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))


async def check_token(token: str, endpoint: str) -> str:
    """The Hub account name the token belongs to; raises HubError with a clear message."""
    token = token.strip()
    if not token:
        raise HubError("Paste a token first (it starts with hf_).")
    try:
        info = await asyncio.to_thread(HfApi(endpoint=endpoint).whoami, token=token)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise HubError(
                "The Hub does not accept this token: check it at huggingface.co/settings/tokens."
            ) from exc
        raise hub_error(exc, endpoint=endpoint) from exc
    except HUB_ERRORS as exc:
        raise hub_error(exc, endpoint=endpoint) from exc
    return str(info.get("name", "unknown account"))


async def save_token(token: str, endpoint: str) -> str:
    """Check the token against the Hub, then store it; returns the account name."""
    name = await check_token(token, endpoint)
    await asyncio.to_thread(login, token=token.strip(), add_to_git_credential=False, skip_if_logged_in=False)
    return name


async def forget_token() -> None:
    await asyncio.to_thread(logout)
