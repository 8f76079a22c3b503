"""Export a chat as Markdown or JSON and import it back, losing nothing; bad files are refused."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mlxui.chat.client import ContentDelta, ReasoningDelta, ReplyMetrics
from mlxui.chat.export import ChatImportError, chat_to_markdown, export_chat, export_markdown, import_chat
from mlxui.chat.store import ChatNotFound, ChatStore
from mlxui.db import close_db, init_db
from mlxui.db.models import Chat, ServerProfile

METRICS = ReplyMetrics(
    model="tiny", ttft_s=0.25, tokens_per_s=41.5, prompt_tokens=12, completion_tokens=30, total_s=1.0,
    thinking_s=0.4, finish_reason="stop",
)  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path):
    await init_db(tmp_path / "mlxui.sqlite3")
    yield ChatStore(tmp_path / "images")
    await close_db()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 0, 255)).save(out, format="PNG")
    return out.getvalue()


async def full_chat(store: ChatStore) -> int:
    await ServerProfile.create(name="tiny", model="org/tiny-model")
    chat = await store.create_chat("tiny")
    await store.update_settings(
        chat.id, system_prompt="Be brief.", temperature=0.3, max_tokens=99, thinking=True
    )
    await store.add_user_message(
        chat.id, "What is <b>this</b>?", [await store.attach_image(png(), "blue.png")]
    )
    handle = await store.start_reply(chat.id)
    handle.add(ReasoningDelta("A blue box. ``` not code ```"))
    handle.add(ContentDelta("A **blue** rectangle.\n\n| a | b |\n|---|---|\n| 1 | 2 |"))
    await handle.complete(METRICS)
    await store.add_user_message(chat.id, "Longer please")
    handle = await store.start_reply(chat.id)
    handle.add(ContentDelta("It is a rect"))
    await handle.stop()
    await store.rename_chat(chat.id, "<script>alert(1)</script> Blue")
    return chat.id


def comparable(export: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(export)
    data.pop("exported_at")
    return data


async def test_json_round_trip_keeps_everything(store: ChatStore, tmp_path: Path) -> None:
    original = await export_chat(store, await full_chat(store))
    assert original["format"] == "mlxui-chat" and original["version"] == 1
    assert original["chat"]["model"] == "org/tiny-model" and original["chat"]["profile"] == "tiny"
    picture = original["messages"][0]["attachments"][0]
    assert base64.b64decode(picture["data"]) == png() and picture["name"] == "blue.png"
    assert original["messages"][1]["metrics"] == METRICS.to_dict()

    text = json.dumps(original)  # what a user saves and later opens
    imported = await import_chat(store, text)
    assert imported.title == "<script>alert(1)</script> Blue" and imported.profile_name == "tiny"
    again = await export_chat(store, imported.id)
    assert comparable(again) == comparable(original)
    assert [c.id for c in await store.list_chats("tiny")].count(imported.id) == 1


async def test_import_into_another_database(store: ChatStore, tmp_path: Path) -> None:
    original = await export_chat(store, await full_chat(store))
    await close_db()
    await init_db(tmp_path / "elsewhere.sqlite3")
    other = ChatStore(tmp_path / "other-images")
    imported = await import_chat(other, json.dumps(original))  # no server "tiny" here
    assert imported.profile_name is None
    messages = await other.messages(imported.id)
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "partial"),
    ]
    assert (tmp_path / "other-images" / messages[0].attachments[0]["path"]).read_bytes() == png()


async def test_markdown_shows_the_conversation_and_keeps_html_inert(store: ChatStore) -> None:
    chat_id = await full_chat(store)
    md = await export_markdown(store, chat_id)
    assert md.startswith("# &lt;script&gt;alert(1)&lt;/script&gt; Blue\n")
    assert "<script>" not in md
    assert "Server: tiny · Model: org/tiny-model" in md
    assert md.index("## User") < md.index("## Assistant") < md.index("Longer please")
    assert "<summary>Thinking (0.4 s)</summary>" in md
    assert "````text\nA blue box. ``` not code ```\n````" in md  # thinking verbatim, fence can't break
    assert "A **blue** rectangle." in md and "| 1 | 2 |" in md
    assert "first token 0.25 s · 41.5 tokens/s · 12 prompt + 30 completion tokens · model tiny" in md
    assert "*[image: blue.png, image/png, 20×10]*" in md
    assert "*(incomplete: Stopped by user.)*" in md
    assert chat_to_markdown(await export_chat(store, chat_id)) == md


async def test_unknown_chat_cannot_be_exported(store: ChatStore) -> None:
    with pytest.raises(ChatNotFound):
        await export_chat(store, 12345)


def _broken(export: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(export)
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("format", "something-else", "Not a chat export"),
        ("version", 99, "made by a newer mlxui"),
        ("version", KeyError, '"version" is missing'),
        ("chat", [], '"chat" must be an object'),
        ("chat.title", 5, "chat.title must be text"),
        ("chat.temperature", "hot", "chat.temperature must be a number"),
        ("chat.created_at", "yesterday", "chat.created_at is not an ISO date"),
        ("messages", {}, '"messages" must be a list'),
        ("messages.1.role", "wizard", "messages[1].role must be one of"),
        ("messages.1.status", "great", "messages[1].status must be one of"),
        ("messages.1.metrics", "fast", "messages[1].metrics must be an object"),
        (
            "messages.0.attachments.0.data",
            "%%%not base64",
            "messages[0]: an image's data is not valid base64",
        ),
        (
            "messages.0.attachments.0.data",
            base64.b64encode(b"MZ\x90\x00 an exe").decode(),
            "not an image mlxui can send",
        ),
    ],
)
async def test_malformed_imports_are_refused_with_a_reason(
    store: ChatStore, tmp_path: Path, path, value, message
) -> None:
    export = await export_chat(store, await full_chat(store))
    chats_before = await Chat.all().count()
    images_before = sorted(p.name for p in (tmp_path / "images").iterdir())
    with pytest.raises(ChatImportError) as caught:
        await import_chat(store, _broken(export, path, value))
    assert message in caught.value.message
    assert await Chat.all().count() == chats_before  # nothing half-imported
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == images_before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe not text", "not valid JSON"),
        ("{broken", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
async def test_non_json_is_refused(store: ChatStore, data, message) -> None:
    with pytest.raises(ChatImportError, match=message):
        await import_chat(store, data)
