"""Start-up and shut-down of the database: one SQLite file in WAL mode, migrated on every start."""

from __future__ import annotations

import asyncio
import pkgutil
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.exceptions import BaseORMException
from tortoise.migrations.api import migrate

APP_LABEL = "models"  # models.py refers to "models.Chat" etc.; the label must stay "models"
MODELS_MODULE = "mlxui.db.models"
MIGRATIONS_MODULE = "mlxui.db.migrations"
MIGRATIONS_TABLE = "tortoise_migrations"  # the name Tortoise's MigrationRecorder uses
MIGRATE_TIMEOUT_S = 120.0  # our tables are small; anything slower is stuck, not busy


_app_context: TortoiseContext | None = None  # what init_db opened and close_db closes


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated; the message names the file and the cause."""


def tortoise_config(db_path: Path) -> dict[str, Any]:
    """The one Tortoise config, used by the app (`init_db`) and by `python -m tortoise`."""
    return {
        "connections": {
            "default": {
                "engine": "tortoise.backends.sqlite",
                # Extra credentials become PRAGMAs on every connection Tortoise opens. WAL lets the
                # UI read while a download or a chat writes; foreign keys make Chat->Message cascade.
                "credentials": {"file_path": str(db_path), "journal_mode": "WAL", "foreign_keys": "ON"},
            }
        },
        "apps": {
            APP_LABEL: {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(db_path: Path, *, target: str | None = None) -> None:
    """Open the database at `db_path`, bring its schema up to date and make the models usable.

    Safe on a missing file, on a database at any earlier migration and when called twice.
    `target` (a migration name such as "0001_initial") stops there instead of at the latest
    migration; only tests and repair tools need it. Raises `DatabaseError` with a message for
    the user.
    """
    await close_db()  # a second init must not leave the first one's connections open
    db_path = Path(db_path).expanduser()
    config = tortoise_config(db_path)
    try:
        await _probe(db_path)
        # Migrations get a context of their own: Tortoise's migrate() re-initialises whatever
        # context is current, and leaving this one closes the connections it opened.
        async with asyncio.timeout(MIGRATE_TIMEOUT_S), TortoiseContext():
            await migrate(
                config=config,
                target=f"{APP_LABEL}.{target}" if target else None,
                direction="forward",
            )
        await _open_app_context(config)
        await _check_opened(db_path)
    except DatabaseError:
        await close_db()
        raise
    except TimeoutError as exc:
        await close_db()
        raise DatabaseError(
            f"Migrating the database {db_path} took longer than {MIGRATE_TIMEOUT_S:.0f} s"
        ) from exc
    except (BaseORMException, sqlite3.Error, OSError, ValueError) as exc:
        await close_db()
        raise DatabaseError(f"Cannot open the database {db_path}: {exc}") from exc


async def close_db() -> None:
    """Close every connection `init_db` opened; harmless when nothing is open."""
    global _app_context
    context, _app_context = _app_context, None
    if context is not None:
        await context.close_connections()


async def journal_mode() -> str:
    """SQLite's journal mode for the open database, e.g. "wal"."""
    rows = await get_connection("default").execute_query_dict("PRAGMA journal_mode")
    return str(rows[0]["journal_mode"]).lower()


async def applied_migrations() -> list[str]:
    """Names of the migrations recorded in the open database, oldest first."""
    rows = await get_connection("default").execute_query_dict(
        f'SELECT "name" FROM "{MIGRATIONS_TABLE}" WHERE "app" = ? ORDER BY "id"',  # nosec B608
        [APP_LABEL],
    )
    return [row["name"] for row in rows]


def known_migrations() -> list[str]:
    """Names of the migrations shipped with this version of mlxui, in order."""
    from mlxui.db import migrations

    names = (info.name for info in pkgutil.iter_modules(migrations.__path__) if not info.ispkg)
    return sorted(name for name in names if not name.startswith(("_", "~")))


async def _open_app_context(config: dict[str, Any]) -> None:
    """Initialise Tortoise for the app as the process-wide context.

    It is deliberately not entered as the task's current context (what `Tortoise.init` does):
    then every task, whichever created it (NiceGUI's start-up hook, request handlers, timers,
    tests), resolves the models through the same global fallback, and `close_db` always
    closes the context that `init_db` opened.
    """
    global _app_context
    _app_context = TortoiseContext()
    with _app_context:  # current only while it binds the models, which looks the context up
        await _app_context.init(config=config, _enable_global_fallback=True)


async def _probe(db_path: Path) -> None:
    """Open the file once without Tortoise, so a bad path fails here with SQLite's reason.

    Tortoise 1.1 keeps a connection's lock when opening the connection fails, and its migration
    recorder swallows that first error, so the next query waits for the lock forever: a
    missing folder or a file that is not a database would hang start-up instead of failing.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # Setting the journal mode makes SQLite read the header: "file is not a database".
    async with aiosqlite.connect(db_path) as conn, conn.execute("PRAGMA journal_mode=WAL") as cursor:
        await cursor.fetchone()


async def _check_opened(db_path: Path) -> None:
    mode = await journal_mode()
    if mode != "wal":
        raise DatabaseError(f"The database {db_path} refused WAL mode (journal_mode={mode!r})")
    # Tortoise skips recorded migrations it has no file for; with a linear history that means a
    # newer mlxui wrote this file, and its columns would surprise us later. Say so now.
    unknown = sorted(set(await applied_migrations()) - set(known_migrations()))
    if unknown:
        raise DatabaseError(
            f"The database {db_path} was migrated by a newer mlxui (unknown migrations: "
            f"{', '.join(unknown)}). Upgrade mlxui or point MLXUI_HOME at another folder."
        )
