"""The database: Tortoise models in SQLite (WAL), migrated by Tortoise's own migration tool.

The app calls `await init_db(config.db_path)` at start-up (it applies every pending migration
in-process) and `await close_db()` at shut-down. Nothing outside `mlxui.db` writes SQL.

Changing a table (run from the repository root):

1. Edit `mlxui/db/models.py`. A new NOT NULL column needs `db_default=...` as well as
   `default=...`: SQLite cannot add a NOT NULL column without a default in the database.
   Keep `;` out of model docstrings' first lines, field descriptions and string defaults:
   they land in the migration's SQL, which Tortoise 1.1 splits on every `;` for SQLite.
2. Write the migration::

       .venv/bin/python -m tortoise -c mlxui.db.TORTOISE_ORM makemigrations --name what_changed

   It lands in `mlxui/db/migrations/` as `NNNN_what_changed.py`. Read it, tidy it with
   `.venv/bin/ruff check --fix FILE && .venv/bin/ruff format FILE` (the tool writes unsorted
   imports) and commit it. Running makemigrations again must print "No changes detected".
3. Nothing else: the next start of mlxui applies it. By hand, against the database in
   `MLXUI_HOME`: `python -m tortoise -c mlxui.db.TORTOISE_ORM migrate` (also `history`,
   `heads`, `sqlmigrate models NNNN`, `downgrade models NNNN`).

`TORTOISE_ORM` is `tortoise_config(load_config().db_path)`, computed when the tool asks for it, so
the app and the tool share one config and importing this package touches no files.
"""

from __future__ import annotations

from typing import Any

from mlxui.db.settings import get_setting, set_setting
from mlxui.db.setup import (
    DatabaseError,
    applied_migrations,
    close_db,
    init_db,
    journal_mode,
    known_migrations,
    tortoise_config,
)

__all__ = [
    "DatabaseError",
    "applied_migrations",
    "close_db",
    "get_setting",
    "init_db",
    "journal_mode",
    "known_migrations",
    "set_setting",
    "tortoise_config",
]


def __getattr__(name: str) -> Any:
    # `python -m tortoise -c mlxui.db.TORTOISE_ORM` looks the config up with getattr().
    if name == "TORTOISE_ORM":
        from mlxui.config import load_config

        db_path = load_config().db_path
        # Tortoise's CLI hangs (rather than failing) when the database's folder is missing.
        db_path.parent.mkdir(parents=True, exist_ok=True)
        return tortoise_config(db_path)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
