"""`mlxui chats list|export|import`: saved chats from a terminal, without the app running.

They open MLXUI_HOME's database directly (SQLite in WAL mode, so a running app is no obstacle).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from mlxui.cli.common import CliError, print_json
from mlxui.config import Config, load_config

T = TypeVar("T")


def add_commands(commands: Any) -> None:
    chats = commands.add_parser("chats", help="list, export and import saved chats")
    sub = chats.add_subparsers(dest="chats_command", metavar="ACTION", required=True)

    list_ = sub.add_parser("list", help="saved chats, most recent first")
    list_.add_argument("--server", metavar="NAME", help="only the chats of this server profile")
    list_.add_argument("--json", action="store_true", help="print JSON for scripts")
    list_.set_defaults(handler=list_command)

    export = sub.add_parser("export", help="write a chat as Markdown or JSON")
    export.add_argument("chat_id", metavar="ID", type=int, help="the chat's id (see `mlxui chats list`)")
    export.add_argument("--format", choices=["md", "json"], default="md", help="md (default) or json")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    export.set_defaults(handler=export_command)

    import_ = sub.add_parser("import", help="add a chat from a JSON export")
    import_.add_argument("file", metavar="FILE", help="a file written by `mlxui chats export --format json`")
    import_.add_argument("--server", metavar="NAME", help="attach the chat to this server profile")
    import_.set_defaults(handler=import_command)


def list_command(args: argparse.Namespace) -> int:
    from mlxui.chat.store import ChatStoreError
    from mlxui.db.models import Message

    config = load_config()
    if not config.db_path.exists():
        if args.server:
            raise CliError(f"No server named {args.server!r} (no database in {config.home} yet)", 1)
        print("[]" if args.json else "No chats yet.")
        return 0

    async def run(store: Any) -> list[dict[str, Any]]:
        try:
            chats = await store.list_chats(args.server)
        except ChatStoreError as exc:
            raise CliError(exc.message, 1) from exc
        rows = []
        for chat in chats:
            count = await Message.filter(chat_id=chat.id).count()
            rows.append({
                "id": chat.id, "title": chat.title, "server": chat.profile_name, "messages": count,
                "pinned": chat.pinned, "created_at": chat.created_at.isoformat(),
                "updated_at": chat.updated_at.isoformat(),
            })  # fmt: skip
        return rows

    rows = _with_store(config, run)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("No chats yet." if not args.server else f"No chats for {args.server}.")
        return 0
    print(f"{'ID':>5}  {'UPDATED':<16}  {'SERVER':<20}  {'MSGS':>4}  TITLE")
    for row in rows:
        updated = row["updated_at"][:16].replace("T", " ")
        server = (row["server"] or "-")[:20]
        print(f"{row['id']:>5}  {updated:<16}  {server:<20}  {row['messages']:>4}  {row['title']}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from mlxui.chat.export import chat_to_markdown, export_chat
    from mlxui.chat.store import ChatNotFound

    config = load_config()
    missing = f"No chat with id {args.chat_id} (see `mlxui chats list`)"
    if not config.db_path.exists():
        raise CliError(missing, 1)

    async def run(store: Any) -> dict[str, Any]:
        try:
            return await export_chat(store, args.chat_id)
        except ChatNotFound as exc:
            raise CliError(missing, 1) from exc

    export = _with_store(config, run)
    text = (
        json.dumps(export, indent=2, ensure_ascii=False) + "\n"
        if args.format == "json"
        else chat_to_markdown(export)
    )
    if args.output:
        try:
            Path(args.output).expanduser().write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"Cannot write {args.output}: {exc.strerror or exc}", 1) from exc
        print(f"Exported chat {args.chat_id} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def import_command(args: argparse.Namespace) -> int:
    from mlxui.chat.export import ChatImportError, import_chat

    config = load_config()
    try:
        data = Path(args.file).expanduser().read_bytes()
    except OSError as exc:
        raise CliError(f"Cannot read {args.file}: {exc.strerror or exc}", 1) from exc

    async def run(store: Any) -> tuple[Any, int]:
        from mlxui.db.models import Message

        try:
            chat = await import_chat(store, data, profile=args.server)
        except ChatImportError as exc:
            raise CliError(f"{args.file}: {exc.message}", 1) from exc
        return chat, await Message.filter(chat_id=chat.id).count()

    config.ensure_dirs()
    chat, count = _with_store(config, run)
    print(f"Imported chat {chat.id}: {chat.title} ({count} messages)")
    return 0


def _with_store(config: Config, work: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _store(config) as store:
            return await work(store)

    return asyncio.run(main())


@asynccontextmanager
async def _store(config: Config) -> AsyncIterator[Any]:
    from mlxui.chat.store import ChatStore
    from mlxui.db import DatabaseError, close_db, init_db

    try:
        await init_db(config.db_path)
    except DatabaseError as exc:
        raise CliError(str(exc), 1) from exc
    try:
        yield ChatStore(config.images_dir)
    finally:
        await close_db()
