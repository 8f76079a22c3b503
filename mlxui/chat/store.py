"""Chats and their messages in the database: the one service the Chat page and the CLI talk to.

Never lose a conversation:
- the user's message is written before anything is sent (`add_user_message`);
- a reply's row is created as soon as it starts (`start_reply`), status "partial" with the reason
  "interrupted", and its text is written every `autosave_s` (2 s) while it streams, so a crash or
  kill -9 of mlxui loses at most the last two seconds of that one reply and never an earlier message;
- `complete()` / `stop()` / `fail()` write the final text, status and reason.

`reply()` does all of it for one answer (history -> stream -> handle); cancelling the task that
awaits it is Stop. Values returned are detached dataclasses, safe to keep while rows change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tortoise.expressions import Q

from mlxui.chat import images
from mlxui.chat.client import ChatError, stream_chat
from mlxui.chat.history import model_history
from mlxui.chat.reply import STOPPED, MessageInfo, ReplyHandle, message_info
from mlxui.chat.titles import DEFAULT_TITLE, clean_title, make_title
from mlxui.db.models import Chat, Message, ServerProfile
from mlxui.servers.profile_rules import NAME_PATTERN

AUTOSAVE_S = 2.0
INTERRUPTED = "Interrupted: mlxui stopped before the reply finished."

log = logging.getLogger(__name__)


class ChatStoreError(ValueError):
    """A request the store cannot honour; the message is for the user."""

    @property
    def message(self) -> str:
        return str(self.args[0])


class ChatNotFound(ChatStoreError):
    pass


@dataclass(frozen=True)
class ChatInfo:
    id: int
    title: str
    profile_id: int | None
    profile_name: str | None
    model: str | None  # the model it was started with (repo id or folder); a profile's model too
    system_prompt: str
    temperature: float | None
    max_tokens: int | None
    thinking: bool | None  # None: the model's default
    pinned: bool
    created_at: datetime
    updated_at: datetime

    @property
    def server(self) -> str | None:
        """The name the chat sends as `model` to the gateway: its profile's, else its model."""
        return self.profile_name or self.model


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "leave this setting as it is" (None means "the model's default")


class ChatStore:
    """CRUD for chats and messages, plus `reply()`. `images_dir` is `Config.images_dir`."""

    def __init__(
        self,
        images_dir: Path,
        *,
        autosave_s: float = AUTOSAVE_S,
        max_image_bytes: int = images.MAX_IMAGE_BYTES,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.autosave_s = autosave_s
        self.max_image_bytes = max_image_bytes

    # ----- chats ----------------------------------------------------------------------------------
    async def create_chat(
        self, profile: int | str | None = None, *, title: str = DEFAULT_TITLE, model: str | None = None
    ) -> ChatInfo:
        """A new empty chat for a server profile (its id or name), or for a model without a
        profile (`model`: its repo id or folder, what the gateway takes)."""
        profile_id, model = await _owner(profile, model)
        chat = await Chat.create(profile_id=profile_id, model=model, title=clean_title(title))
        return await self.get_chat(chat.id)

    async def set_server(self, chat_id: int, profile: str | None, *, model: str | None = None) -> ChatInfo:
        """Continue a chat with another profile or model (its own may be gone)."""
        await self._chat(chat_id)
        profile_id, model = await _owner(profile, model)
        await Chat.filter(id=chat_id).update(profile_id=profile_id, model=model, updated_at=_now())
        return await self.get_chat(chat_id)

    async def last_chat(self) -> ChatInfo | None:
        """The chat updated last (what /chat opens)."""
        chat = await Chat.all().order_by("-updated_at", "-id").first().select_related("profile")
        return None if chat is None else _chat_info(chat)

    async def get_chat(self, chat_id: int) -> ChatInfo:
        chat = await Chat.get_or_none(id=chat_id).select_related("profile")
        if chat is None:
            raise ChatNotFound(f"No chat with id {chat_id}")
        return _chat_info(chat)

    async def list_chats(
        self, profile: int | str | None = None, *, model: str | None = None
    ) -> list[ChatInfo]:
        """Chats of one profile, or of one model without a profile (`model`), or all chats (neither):
        pinned first, then most recently updated."""
        query = Chat.all()
        if profile is not None:
            query = query.filter(profile_id=await resolve_profile(profile))
        elif model is not None:
            query = query.filter(profile_id=None, model=model)
        rows = await query.select_related("profile").order_by("-pinned", "-updated_at", "-id")
        return [_chat_info(chat) for chat in rows]

    async def search_chats(
        self, text: str, profile: int | str | None = None, *, model: str | None = None
    ) -> list[ChatInfo]:
        """Chats whose title or any message contains `text` (case-insensitive)."""
        text = text.strip()
        if not text:
            return await self.list_chats(profile, model=model)
        matches = Q(title__icontains=text) | Q(messages__content__icontains=text)
        ids = set(await Chat.filter(matches).values_list("id", flat=True))
        return [chat for chat in await self.list_chats(profile, model=model) if chat.id in ids]

    async def rename_chat(self, chat_id: int, title: str) -> ChatInfo:
        title = " ".join(title.split())
        if not title:
            raise ChatStoreError("A chat title cannot be empty")
        await self._chat(chat_id)
        await Chat.filter(id=chat_id).update(title=clean_title(title), updated_at=_now())
        return await self.get_chat(chat_id)

    async def set_pinned(self, chat_id: int, pinned: bool) -> ChatInfo:
        await self._chat(chat_id)
        await Chat.filter(id=chat_id).update(pinned=pinned)
        return await self.get_chat(chat_id)

    async def update_settings(
        self,
        chat_id: int,
        *,
        system_prompt: str = UNSET,
        temperature: float | None = UNSET,
        max_tokens: int | None = UNSET,
        thinking: bool | None = UNSET,
    ) -> ChatInfo:
        """Change per-chat settings; leave out what stays. None means "the model's default"."""
        changes: dict[str, Any] = {}
        if system_prompt is not UNSET:
            if not isinstance(system_prompt, str):
                raise ChatStoreError("The system prompt must be text")
            changes["system_prompt"] = system_prompt
        if temperature is not UNSET:
            if temperature is not None and not (
                isinstance(temperature, int | float) and 0 <= temperature <= 2
            ):
                raise ChatStoreError("Temperature must be a number from 0 to 2")
            changes["temperature"] = None if temperature is None else float(temperature)
        if max_tokens is not UNSET:
            if max_tokens is not None and (
                isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
            ):
                raise ChatStoreError("Max tokens must be a whole number of at least 1")
            changes["max_tokens"] = max_tokens
        if thinking is not UNSET:
            if thinking is not None and not isinstance(thinking, bool):
                raise ChatStoreError("Thinking must be on, off or the model's default")
            changes["thinking"] = thinking
        await self._chat(chat_id)
        if changes:
            await Chat.filter(id=chat_id).update(**changes)
        return await self.get_chat(chat_id)

    async def delete_chat(self, chat_id: int) -> None:
        """Delete a chat, its messages and the image files no other message uses."""
        chat = await self._chat(chat_id)
        attachments = [
            a
            for rows in await Message.filter(chat_id=chat_id).values_list("attachments", flat=True)
            for a in rows or []
        ]
        await Message.filter(chat_id=chat_id).delete()
        await chat.delete()
        await self.forget_images(attachments)

    # ----- messages -------------------------------------------------------------------------------
    async def messages(self, chat_id: int) -> list[MessageInfo]:
        await self._chat(chat_id)
        return [message_info(m) for m in await Message.filter(chat_id=chat_id).order_by("id")]

    async def attach_image(self, data: bytes, name: str | None = None) -> dict[str, Any]:
        """Check and store an image for a message; raises `images.ImageError` with the reason."""
        return await asyncio.to_thread(
            images.store_image, data, self.images_dir, name=name, max_bytes=self.max_image_bytes
        )

    async def add_user_message(
        self, chat_id: int, text: str, attachments: Sequence[dict[str, Any]] = ()
    ) -> MessageInfo:
        """Save the user's message (do this before sending). The first one names the chat."""
        chat = await self._chat(chat_id)
        attachments = _checked_attachments(attachments, self.images_dir)
        if not text.strip() and not attachments:
            raise ChatStoreError("Type a message or attach an image")
        first = not await Message.filter(chat_id=chat_id, role="user").exists()
        message = await Message.create(chat_id=chat_id, role="user", content=text, attachments=attachments)
        changes: dict[str, Any] = {"updated_at": _now()}
        if first and chat.title == DEFAULT_TITLE:
            changes["title"] = make_title(text, has_images=bool(attachments))
        await Chat.filter(id=chat_id).update(**changes)
        return message_info(message)

    async def start_reply(self, chat_id: int) -> ReplyHandle:
        """Create the assistant's row now (partial, "interrupted") and return its handle."""
        await self._chat(chat_id)
        message = await Message.create(chat_id=chat_id, role="assistant", status="partial", error=INTERRUPTED)
        return ReplyHandle(message.id, chat_id, autosave_s=self.autosave_s)

    async def regenerate(self, chat_id: int) -> list[dict[str, Any]]:
        """Drop the last reply (whatever its status) and return the history to answer again."""
        last = await Message.filter(chat_id=chat_id).order_by("-id").first()
        if last is not None and last.role == "assistant":
            await last.delete()
            last = await Message.filter(chat_id=chat_id).order_by("-id").first()
        if last is None or last.role != "user":
            raise ChatStoreError("There is no message to answer")
        return await self.history_for_model(chat_id)

    async def edit_last_user_message(
        self, chat_id: int, text: str, attachments: Sequence[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Replace the last user message (and drop the replies after it); returns the history to
        send again. `attachments=None` keeps the message's images."""
        await self._chat(chat_id)
        last_user = await Message.filter(chat_id=chat_id, role="user").order_by("-id").first()
        if last_user is None:
            raise ChatStoreError("There is no message to edit")
        old = list(last_user.attachments or [])
        new = old if attachments is None else _checked_attachments(attachments, self.images_dir)
        if not text.strip() and not new:
            raise ChatStoreError("Type a message or attach an image")
        await Message.filter(chat_id=chat_id, id__gt=last_user.id).delete()
        await Message.filter(id=last_user.id).update(content=text, attachments=new)
        await Chat.filter(id=chat_id).update(updated_at=_now())
        await self.forget_images([a for a in old if a not in new])
        return await self.history_for_model(chat_id)

    async def history_for_model(self, chat_id: int) -> list[dict[str, Any]]:
        """The conversation as OpenAI messages: system prompt first, images as data-URL parts.
        Failed and empty replies are left out; reasoning is not sent back."""
        chat = await self._chat(chat_id)
        rows = await Message.filter(chat_id=chat_id).order_by("id")
        return await asyncio.to_thread(model_history, chat.system_prompt, rows, self.images_dir)

    # ----- one reply, start to end ----------------------------------------------------------------
    async def reply(
        self,
        chat_id: int,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        on_update: Callable[[ReplyHandle], Any] | None = None,
        starts_in_thinking: bool | None = None,
    ) -> MessageInfo:
        """Answer the chat as it stands, saving as it goes. Returns the saved reply: status
        "complete", or "failed" with the error (a `ChatError` never escapes). Cancel the awaiting
        task to Stop: the reply is saved as "partial" and CancelledError propagates.

        `model` defaults to the chat's server profile name, else its model (what mlxui's gateway at
        `base_url` expects). `on_update(handle)` is called (synchronously) after each piece of text:
        throttle rendering there."""
        chat = await self.get_chat(chat_id)
        model = model or chat.server
        if not model:
            raise ChatStoreError("This chat has no model: choose one to send to")
        history = await self.history_for_model(chat_id)
        handle = await self.start_reply(chat_id)
        stream = stream_chat(
            history, model=model, base_url=base_url, api_key=api_key, temperature=chat.temperature,
            max_tokens=chat.max_tokens, thinking=chat.thinking, starts_in_thinking=starts_in_thinking,
        )  # fmt: skip
        try:
            async with stream:
                async for event in stream:
                    if await handle.feed(event) and on_update is not None:
                        on_update(handle)
        except asyncio.CancelledError:
            await asyncio.shield(handle.stop(STOPPED, stream.metrics()))
            raise
        except ChatError as exc:
            return await asyncio.shield(handle.fail(exc.message, stream.metrics()))
        # Shielded: a Stop that lands while the finished reply is written must not lose it.
        return await asyncio.shield(handle.complete(stream.metrics()))

    # ----- helpers --------------------------------------------------------------------------------
    async def _chat(self, chat_id: int) -> Chat:
        chat = await Chat.get_or_none(id=chat_id)
        if chat is None:
            raise ChatNotFound(f"No chat with id {chat_id}")
        return chat

    async def forget_images(self, attachments: Iterable[dict[str, Any]]) -> None:
        """Delete image files that no remaining message refers to (names are content hashes,
        so two messages can share one file)."""
        paths = {a.get("path") for a in attachments if isinstance(a, dict)}
        if not paths:
            return
        for rows in await Message.all().values_list("attachments", flat=True):
            paths -= {a.get("path") for a in rows or [] if isinstance(a, dict)}
        for path in paths:
            try:
                await asyncio.to_thread(images.delete_image, {"path": path}, self.images_dir)
            except images.ImageError as exc:  # not one of our names: nothing of ours to delete
                log.debug("not deleting %r: %s", path, exc)


def _now() -> datetime:
    return datetime.now(UTC)


async def resolve_profile(profile: int | str | None) -> int | None:
    """The id of a server profile given by id or name (None stays None); ChatStoreError if unknown."""
    if profile is None:
        return None
    if isinstance(profile, int):
        if not await ServerProfile.exists(id=profile):
            raise ChatStoreError(f"No server profile with id {profile}")
        return profile
    row = await ServerProfile.get_or_none(name=profile) if NAME_PATTERN.fullmatch(profile) else None
    if row is None:
        raise ChatStoreError(f"No server named {profile!r}")
    return row.id


async def _owner(profile: int | str | None, model: str | None) -> tuple[int | None, str | None]:
    """(profile id, model) of a chat: a profile's chat keeps its model too, to be read when the
    profile is gone; a chat without a profile keeps the model name it sends."""
    profile_id = await resolve_profile(profile)
    if profile_id is not None:
        row = await ServerProfile.get(id=profile_id)
        return profile_id, row.model
    return None, (model or None)


def _checked_attachments(attachments: Iterable[dict[str, Any]], images_dir: Path) -> list[dict[str, Any]]:
    checked = []
    for attachment in attachments:
        if not images.attachment_file(attachment, images_dir).is_file():  # our names only
            raise ChatStoreError(f"The image {attachment.get('name') or attachment['path']} is not stored")
        checked.append(dict(attachment))
    return checked


def _chat_info(chat: Chat) -> ChatInfo:
    profile = chat.profile
    return ChatInfo(
        id=chat.id, title=chat.title, profile_id=chat.profile_id,  # type: ignore[attr-defined]
        profile_name=profile.name if profile is not None else None, model=chat.model,
        system_prompt=chat.system_prompt,
        temperature=chat.temperature, max_tokens=chat.max_tokens, thinking=chat.thinking,
        pinned=chat.pinned, created_at=chat.created_at, updated_at=chat.updated_at,
    )  # fmt: skip
