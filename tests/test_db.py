"""The database layer: start-up migrates any earlier database in place, in WAL mode, losing nothing."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError
from tortoise.migrations.autodetector import MigrationAutodetector

from mlxui.db import (
    DatabaseError,
    applied_migrations,
    close_db,
    get_setting,
    init_db,
    journal_mode,
    known_migrations,
    set_setting,
    tortoise_config,
)
from mlxui.db.models import Chat, Download, Message, ModelInfo, ServerProfile, Setting

TABLES = ["settings", "server_profiles", "chats", "messages", "downloads", "model_info"]


@pytest.fixture
async def db(tmp_path: Path):
    path = tmp_path / "mlxui.sqlite3"
    await init_db(path)
    yield path
    await close_db()


async def test_fresh_database_gets_every_table_in_wal_mode(db: Path) -> None:
    assert set(TABLES) <= set(await _tables())
    assert (
        await applied_migrations()
        == known_migrations()
        == [
            "0001_initial",
            "0002_chat_pinned",
            "0003_chat_model",
            "0004_profile_pinned",
            "0005_profile_distributed",
        ]
    )
    assert await journal_mode() == "wal"
    await close_db()
    # The last connection to close folds the WAL back into the file: nothing is left open,
    # not even the connections the migrations used.
    assert not db.with_name(db.name + "-wal").exists()
    # WAL is a property of the file, so a process that opens it later (the CLI, a backup) sees it.
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_crud_on_every_model(db: Path) -> None:
    profile = await ServerProfile.create(name="tiny", model="org/tiny", chat_template_args={"a": 1})
    chat = await Chat.create(profile=profile, title="Hello")
    message = await Message.create(chat=chat, role="user", content="hi", metrics={"ttft_s": 0.1})
    download = await Download.create(repo_id="org/tiny", bytes_total=10)
    info = await ModelInfo.create(repo_id="org/tiny", sha="a" * 40, data={"vision": False})
    await Setting.create(key="ui.dark_mode", value=True)

    assert (await ServerProfile.get(name="tiny")).chat_template_args == {"a": 1}
    assert (await Chat.get(id=chat.id)).pinned is False
    assert [m.content for m in await chat.messages.all()] == ["hi"]
    assert (await Download.get(repo_id="org/tiny")).state == "queued"
    assert (await ModelInfo.get(repo_id="org/tiny")).data == {"vision": False}
    assert (await Setting.get(key="ui.dark_mode")).value is True

    await Chat.filter(id=chat.id).update(pinned=True, title="Renamed")
    await Download.filter(id=download.id).update(state="done", bytes_done=10)
    message.content = "hello"
    await message.save()
    assert (await Chat.get(id=chat.id)).pinned is True
    assert (await Download.get(id=download.id)).bytes_done == 10
    assert (await Message.get(id=message.id)).content == "hello"

    with pytest.raises(IntegrityError):
        await ServerProfile.create(name="tiny", model="org/other")

    await info.delete()
    await download.delete()
    await Setting.filter(key="ui.dark_mode").delete()
    assert await ModelInfo.all().count() == await Download.all().count() == 0
    assert await Setting.all().count() == 0


async def test_deleting_a_chat_deletes_its_messages_and_a_profile_only_unlinks(db: Path) -> None:
    profile = await ServerProfile.create(name="tiny", model="org/tiny")
    chat = await Chat.create(profile=profile)
    other = await Chat.create(title="other")
    for text in ("one", "two"):
        await Message.create(chat=chat, role="user", content=text)
    await Message.create(chat=other, role="user", content="stays")

    await profile.delete()
    assert (await Chat.get(id=chat.id)).profile_id is None  # SET NULL: the chat survives

    await chat.delete()
    assert [m.content for m in await Message.all()] == ["stays"]
    # The cascade is in the schema, so raw SQL (another tool, an old version) gets it too.
    await get_connection("default").execute_query("DELETE FROM chats WHERE id = ?", [other.id])
    assert await Message.all().count() == 0


async def test_upgrade_in_place_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    await init_db(path, target="0001_initial")  # the database as mlxui 0001 left it
    try:
        assert await applied_migrations() == ["0001_initial"]
        assert "pinned" not in await _columns("chats")
        # The models already have later columns (`pinned`, `model`): insert rows as the old schema had them.
        now = datetime.now(UTC).isoformat(" ")
        profile_id = await get_connection("default").execute_insert(
            "INSERT INTO server_profiles (name, model, kind, chat_template_args, autostart, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ["tiny", "org/tiny", "lm", "{}", 1, now, now],
        )
        chat_id = await get_connection("default").execute_insert(
            "INSERT INTO chats (profile_id, title, system_prompt, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [profile_id, "Old chat", "be brief", now, now],
        )
        await Message.create(chat_id=chat_id, role="user", content="hi")
        await Message.create(chat_id=chat_id, role="assistant", content="hello", reasoning="...")
        await Download.create(repo_id="org/tiny", state="paused", bytes_done=5, bytes_total=10)
        await set_setting("ui.dark_mode", False)
        before = await _dump()
    finally:
        await close_db()

    await init_db(path)
    try:
        assert await applied_migrations() == [
            "0001_initial",
            "0002_chat_pinned",
            "0003_chat_model",
            "0004_profile_pinned",
            "0005_profile_distributed",
        ]
        after = await _dump()
        assert [row.pop("pinned") for row in after["chats"]] == [0]
        assert [row.pop("pinned") for row in after["server_profiles"]] == [0]  # old profiles: not pinned
        distributed = ("ranks", "hosts", "backend", "hostfile", "remote_python", "parallel")
        # old profiles run on this machine alone, as before
        assert [[row.pop(c) for c in distributed] for row in after["server_profiles"]] == [[None] * 6]
        assert [row.pop("model") for row in after["chats"]] == [None]  # an old chat follows its profile
        assert after == before
        column = (await _columns("chats"))["pinned"]
        assert (column["notnull"], column["dflt_value"]) == (1, "0")
        chat = await Chat.get(id=chat_id).prefetch_related("messages", "profile")
        assert (chat.title, chat.pinned, chat.profile.name) == ("Old chat", False, "tiny")
        assert [m.content for m in chat.messages] == ["hi", "hello"]
        assert (await Download.get(repo_id="org/tiny")).bytes_done == 5
        assert await get_setting("ui.dark_mode") is False
    finally:
        await close_db()


async def test_init_twice_changes_nothing(db: Path) -> None:
    chat = await Chat.create(title="keep me", pinned=True)
    await set_setting("k", [1, 2])
    before = await _dump()
    records = await _migration_records()

    await init_db(db)

    assert await _dump() == before
    assert await _migration_records() == records  # nothing re-applied, nothing re-recorded
    assert (await Chat.get(id=chat.id)).pinned is True
    assert await journal_mode() == "wal"


async def test_models_work_from_tasks_that_did_not_open_the_database(db: Path) -> None:
    # NiceGUI runs start-up hooks and request handlers in different tasks and contexts.
    await Chat.create(title="seen elsewhere")

    async def titles() -> list[str]:
        return await Chat.all().values_list("title", flat=True)

    task = asyncio.get_running_loop().create_task(titles(), context=contextvars.Context())
    assert await task == ["seen elsewhere"]


@pytest.mark.parametrize(
    "value",
    [True, 0, 3.5, "dark", "", "42", "null", '{"a": 1}', "ünïcode ✓", None, [1, "a"], {"a": {"b": [1]}}],
)
async def test_settings_round_trip_json_values(db: Path, value: Any) -> None:
    await set_setting("some.key", value)
    assert await get_setting("some.key", default="unset") == value
    await close_db()
    await init_db(db)  # and they survive a restart
    assert await get_setting("some.key", default="unset") == value


async def test_settings_default_overwrite_and_tuples(db: Path) -> None:
    assert await get_setting("missing") is None
    assert await get_setting("missing", {"x": 1}) == {"x": 1}
    await set_setting("k", "first")
    await set_setting("k", {"second": True})
    assert await get_setting("k") == {"second": True}
    assert await Setting.filter(key="k").count() == 1
    await set_setting("pair", (1, 2))
    assert await get_setting("pair") == [1, 2]  # JSON has no tuples
    for bad in (object(), float("nan")):
        with pytest.raises((TypeError, ValueError)):
            await set_setting("pair", bad)
    assert await get_setting("pair") == [1, 2]  # a refused value leaves the old one


async def test_a_file_that_is_not_a_database_fails_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "mlxui.sqlite3"
    path.write_bytes(b"this is not sqlite" * 64)
    # Tortoise alone would wait forever on this file; init_db must fail fast and say why.
    with pytest.raises(DatabaseError, match=r"mlxui\.sqlite3.*not a database"):
        await asyncio.wait_for(init_db(path), timeout=30)


async def test_a_database_from_a_newer_mlxui_is_refused(db: Path) -> None:
    await get_connection("default").execute_insert(
        'INSERT INTO tortoise_migrations ("app", "name", "applied_at") VALUES (?, ?, ?)',
        ["models", "0099_from_the_future", datetime.now(UTC).isoformat(" ")],
    )
    with pytest.raises(DatabaseError, match="newer mlxui.*0099_from_the_future"):
        await init_db(db)


async def test_models_and_migrations_agree(tmp_path: Path) -> None:
    # What `python -m tortoise -c mlxui.db.TORTOISE_ORM makemigrations` would write: nothing.
    config = tortoise_config(tmp_path / "unused.sqlite3")
    async with TortoiseContext() as ctx:
        await ctx.init(config=config, init_connections=False)
        assert ctx.apps is not None
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    assert [w.name for w in writers] == [], "models.py changed: run makemigrations (see mlxui.db)"


def test_model_sql_has_no_semicolons() -> None:
    # Tortoise 1.1 runs SQLite migrations by splitting their SQL on ";", and model docstrings,
    # field descriptions and string defaults are part of that SQL.
    texts = []
    for model in (Setting, ServerProfile, Chat, Message, Download, ModelInfo):
        texts.append(model._meta.table_description or "")
        for field in model._meta.fields_map.values():
            texts.append(field.description or "")
            texts.extend(v for v in (field.default, getattr(field, "db_default", None)) if isinstance(v, str))
    assert [text for text in texts if ";" in text] == []


async def _tables() -> list[str]:
    rows = await get_connection("default").execute_query_dict(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    )
    return [row["name"] for row in rows]


async def _columns(table: str) -> dict[str, dict[str, Any]]:
    rows = await get_connection("default").execute_query_dict(f'PRAGMA table_info("{table}")')
    return {row["name"]: row for row in rows}


async def _dump() -> dict[str, list[dict[str, Any]]]:
    conn = get_connection("default")
    return {t: await conn.execute_query_dict(f'SELECT * FROM "{t}" ORDER BY rowid') for t in TABLES}


async def _migration_records() -> list[dict[str, Any]]:
    return await get_connection("default").execute_query_dict("SELECT * FROM tortoise_migrations ORDER BY id")
