"""Export a chat as Markdown or JSON; import a JSON export as a new chat.

The JSON export is self-contained (images inline as base64) and versioned:

    {"format": "mlxui-chat", "version": 1, "exported_at": ISO,
     "chat": {"title", "profile", "model", "system_prompt", "temperature", "max_tokens",
              "thinking", "pinned", "created_at", "updated_at"},
     "messages": [{"role", "content", "reasoning", "status", "error", "metrics", "created_at",
                   "attachments": [{"mime", "width", "height", "bytes", "name", "data": base64}]}]}

Markdown is made from that same dict (`chat_to_markdown`), so both show the same conversation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from mlxui.chat import images
from mlxui.chat.store import ChatInfo, ChatStore, ChatStoreError, resolve_profile
from mlxui.db.models import Chat, Message, ServerProfile

EXPORT_FORMAT = "mlxui-chat"
EXPORT_VERSION = 1
ROLES = ("system", "user", "assistant")
STATUSES = ("complete", "partial", "failed")


class ChatImportError(ValueError):
    """An import file mlxui cannot read; the message says what is wrong and where."""

    @property
    def message(self) -> str:
        return str(self.args[0])


async def export_chat(store: ChatStore, chat_id: int) -> dict[str, Any]:
    """The JSON export of one chat (raises ChatNotFound)."""
    chat = await store.get_chat(chat_id)
    messages = await store.messages(chat_id)
    model = None
    if chat.profile_id is not None:
        row = await ServerProfile.get_or_none(id=chat.profile_id)
        model = row.model if row is not None else None

    def with_image_data(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for attachment in attachments:
            item = {k: attachment[k] for k in ("mime", "width", "height", "bytes", "name") if k in attachment}
            try:
                item["data"] = base64.b64encode(images.read_image(attachment, store.images_dir)).decode(
                    "ascii"
                )
            except images.ImageError as exc:
                item["missing"] = exc.message  # exported anyway, so the conversation stays whole
            out.append(item)
        return out

    exported_messages = []
    for m in messages:
        exported_messages.append({
            "role": m.role, "content": m.content, "reasoning": m.reasoning, "status": m.status,
            "error": m.error, "metrics": m.metrics, "created_at": _iso(m.created_at),
            "attachments": await asyncio.to_thread(with_image_data, m.attachments),
        })  # fmt: skip
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": _iso(datetime.now(UTC)),
        "chat": {
            "title": chat.title, "profile": chat.profile_name, "model": model,
            "system_prompt": chat.system_prompt, "temperature": chat.temperature,
            "max_tokens": chat.max_tokens, "thinking": chat.thinking, "pinned": chat.pinned,
            "created_at": _iso(chat.created_at), "updated_at": _iso(chat.updated_at),
        },
        "messages": exported_messages,
    }  # fmt: skip


async def export_markdown(store: ChatStore, chat_id: int) -> str:
    return chat_to_markdown(await export_chat(store, chat_id))


def chat_to_markdown(export: dict[str, Any]) -> str:
    """Readable Markdown: title, server and model, then each message under a role heading, its
    thinking folded in a <details> block and its metrics in one line. Titles and names are
    escaped, so HTML in them shows as text; thinking sits in a code fence for the same reason."""
    chat = export["chat"]
    lines = [f"# {_escape(chat['title'])}", ""]
    facts = [f"Server: {_escape(chat['profile'] or 'none')}"]
    if chat.get("model"):
        facts.append(f"Model: {_escape(chat['model'])}")
    facts.append(f"Created: {chat['created_at']}")
    lines += [" · ".join(facts), ""]
    if chat.get("system_prompt"):
        lines += ["## System prompt", "", _fenced(chat["system_prompt"]), ""]
    for message in export["messages"]:
        lines += [f"## {message['role'].capitalize()}", ""]
        if message.get("reasoning"):
            seconds = (message.get("metrics") or {}).get("thinking_s")
            took = f" ({seconds:.1f} s)" if isinstance(seconds, int | float) else ""
            lines += [
                "<details>",
                f"<summary>Thinking{took}</summary>",
                "",
                _fenced(message["reasoning"]),
                "",
                "</details>",
                "",
            ]
        if message.get("content"):
            lines += [message["content"], ""]
        for attachment in message.get("attachments") or []:
            size = f"{attachment.get('width', '?')}×{attachment.get('height', '?')}"
            lines += [
                f"*[image: {_escape(attachment.get('name') or 'image')}, {attachment.get('mime', '?')}, {size}]*",
                "",
            ]
        if message.get("status") == "partial":
            lines += [f"*(incomplete: {_escape(message.get('error') or 'stopped')})*", ""]
        elif message.get("status") == "failed":
            lines += [f"*(failed: {_escape(message.get('error') or 'error')})*", ""]
        metrics_line = _metrics_line(message.get("metrics") or {})
        if metrics_line:
            lines += [f"<sub>{metrics_line}</sub>", ""]
    return "\n".join(lines).rstrip() + "\n"


async def import_chat(
    store: ChatStore, data: str | bytes | dict[str, Any], *, profile: int | str | None = None
) -> ChatInfo:
    """Create a new chat from a JSON export (text or parsed). `profile` attaches it to a server;
    by default the export's server name is used when this machine has one by that name.
    Raises ChatImportError (nothing is written) for input that is not a valid export."""
    export = _parse(data)
    _validate(export)
    chat_data = export["chat"]
    profile_id: int | None = None
    if profile is not None:
        try:
            profile_id = await resolve_profile(profile)
        except ChatStoreError as exc:
            raise ChatImportError(exc.message) from exc
    elif chat_data.get("profile"):
        row = await ServerProfile.get_or_none(name=chat_data["profile"])
        profile_id = row.id if row is not None else None
    # Images first (checked by their bytes like any upload); rows after, in one transaction.
    stored: list[list[dict[str, Any]]] = []
    try:
        for i, message in enumerate(export["messages"]):
            stored.append(
                [await _import_image(store, a, f"messages[{i}]") for a in message.get("attachments") or []]
            )
    except ChatImportError:
        await store.forget_images(a for group in stored for a in group)
        raise
    async with in_transaction():
        chat = await Chat.create(
            profile_id=profile_id, title=" ".join(chat_data["title"].split())[:200] or "Imported chat",
            system_prompt=chat_data.get("system_prompt") or "", temperature=chat_data.get("temperature"),
            max_tokens=chat_data.get("max_tokens"), thinking=chat_data.get("thinking"),
            pinned=bool(chat_data.get("pinned")),
        )  # fmt: skip
        for message, attachments in zip(export["messages"], stored, strict=True):
            row = await Message.create(
                chat_id=chat.id, role=message["role"], content=message.get("content") or "",
                reasoning=message.get("reasoning"), status=message.get("status") or "complete",
                error=message.get("error"), metrics=dict(message.get("metrics") or {}), attachments=attachments,
            )  # fmt: skip
            if message.get("created_at"):
                await Message.filter(id=row.id).update(created_at=_parse_time(message["created_at"]))
        times = {k: _parse_time(chat_data[k]) for k in ("created_at", "updated_at") if chat_data.get(k)}
        if times:
            await Chat.filter(id=chat.id).update(**times)
    return await store.get_chat(chat.id)


# ----- validation ---------------------------------------------------------------------------------
def _parse(data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChatImportError(f"Not a chat export: the file is not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise ChatImportError("Not a chat export: expected a JSON object")
    return parsed


def _validate(export: dict[str, Any]) -> None:
    if export.get("format") != EXPORT_FORMAT:
        raise ChatImportError(f'Not a chat export: "format" must be {EXPORT_FORMAT!r}')
    version = export.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ChatImportError('Not a chat export: "version" is missing')
    if version > EXPORT_VERSION:
        raise ChatImportError(
            f"This export is version {version}, made by a newer mlxui; this one reads up to version {EXPORT_VERSION}"
        )
    chat = export.get("chat")
    if not isinstance(chat, dict):
        raise ChatImportError('Not a chat export: "chat" must be an object')
    _expect(chat, "title", str, "chat")
    for key, kinds in (("profile", (str,)), ("model", (str,)), ("system_prompt", (str,)), ("temperature", (int, float)),
                       ("max_tokens", (int,)), ("thinking", (bool,)), ("pinned", (bool,)),
                       ("created_at", (str,)), ("updated_at", (str,))):  # fmt: skip
        _expect(chat, key, kinds, "chat", optional=True)
    for key in ("created_at", "updated_at"):
        if chat.get(key):
            _time_or_error(chat[key], f"chat.{key}")
    messages = export.get("messages")
    if not isinstance(messages, list):
        raise ChatImportError('Not a chat export: "messages" must be a list')
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ChatImportError(f"{where} must be an object")
        if message.get("role") not in ROLES:
            raise ChatImportError(f"{where}.role must be one of {', '.join(ROLES)}")
        for key, kinds in (("content", (str,)), ("reasoning", (str,)), ("error", (str,)), ("metrics", (dict,)),
                           ("attachments", (list,)), ("created_at", (str,)), ("status", (str,))):  # fmt: skip
            _expect(message, key, kinds, where, optional=True)
        if message.get("status") is not None and message["status"] not in STATUSES:
            raise ChatImportError(f"{where}.status must be one of {', '.join(STATUSES)}")
        if message.get("created_at"):
            _time_or_error(message["created_at"], f"{where}.created_at")
        for j, attachment in enumerate(message.get("attachments") or []):
            if not isinstance(attachment, dict) or not isinstance(attachment.get("data"), str):
                raise ChatImportError(f'{where}.attachments[{j}] must be an object with base64 "data"')


_KIND_NAMES = {str: "text", int: "a whole number", bool: "true or false", dict: "an object", list: "a list"}


def _expect(
    obj: dict[str, Any], key: str, kinds: type | tuple[type, ...], where: str, *, optional: bool = False
) -> None:
    value = obj.get(key)
    if value is None and optional:
        return
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        wanted = "a number" if float in kinds else _KIND_NAMES[kinds[0]]
        raise ChatImportError(f"{where}.{key} must be {wanted}")


async def _import_image(store: ChatStore, attachment: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        data = base64.b64decode(attachment["data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ChatImportError(f"{where}: an image's data is not valid base64") from exc
    try:
        return await store.attach_image(
            data, attachment.get("name") if isinstance(attachment.get("name"), str) else None
        )
    except images.ImageError as exc:
        raise ChatImportError(f"{where}: {exc.message}") from exc


def _time_or_error(text: str, where: str) -> None:
    try:
        _parse_time(text)
    except ValueError as exc:
        raise ChatImportError(f"{where} is not an ISO date and time: {text[:40]!r}") from exc


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ----- formatting ---------------------------------------------------------------------------------
def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fenced(text: str) -> str:
    """`text` verbatim in a code fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _metrics_line(metrics: dict[str, Any]) -> str:
    parts = []
    if isinstance(metrics.get("ttft_s"), int | float):
        parts.append(f"first token {metrics['ttft_s']:.2f} s")
    if isinstance(metrics.get("tokens_per_s"), int | float):
        parts.append(f"{metrics['tokens_per_s']:.1f} tokens/s")
    if metrics.get("prompt_tokens") is not None or metrics.get("completion_tokens") is not None:
        parts.append(
            f"{metrics.get('prompt_tokens', '?')} prompt + {metrics.get('completion_tokens', '?')} completion tokens"
        )
    if metrics.get("model"):
        parts.append(f"model {_escape(str(metrics['model']))}")
    return " · ".join(parts)
