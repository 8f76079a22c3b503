"""`mlxui chats ...` as a user types it: a real process, MLXUI_HOME's database, the app not running."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlxui.chat.client import ContentDelta, ReasoningDelta, ReplyMetrics
from mlxui.chat.store import ChatStore
from mlxui.db import close_db, init_db
from mlxui.db.models import ServerProfile

REPO = Path(__file__).resolve().parents[1]


def mlxui(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLXUI_"))}
    env["MLXUI_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "mlxui", "chats", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def _fill(home: Path) -> dict[str, int]:
    await init_db(home / "mlxui.sqlite3")
    try:
        store = ChatStore(home / "images")
        await ServerProfile.create(name="alpha", model="org/alpha")
        await ServerProfile.create(name="beta", model="org/beta")
        first = await store.create_chat("alpha")
        await store.add_user_message(first.id, "How do magnets work?")
        handle = await store.start_reply(first.id)
        handle.add(ReasoningDelta("Physics question."))
        handle.add(ContentDelta("Moving charges."))
        await handle.complete(ReplyMetrics(model="alpha", ttft_s=0.1, tokens_per_s=50.0))
        second = await store.create_chat("beta")
        await store.add_user_message(second.id, "Hello beta")
        return {"alpha": first.id, "beta": second.id}
    finally:
        await close_db()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    home = tmp_path_factory.mktemp("cli-chats-home")
    return home, asyncio.run(_fill(home))


def test_list_shows_chats_and_filters_by_server(home) -> None:
    home, ids = home
    result = mlxui(home, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "UPDATED", "SERVER", "MSGS", "TITLE"]
    assert "How do magnets work?" in result.stdout and "Hello beta" in result.stdout
    as_json = json.loads(mlxui(home, "list", "--json", "--server", "alpha").stdout)
    assert [(c["id"], c["title"], c["server"], c["messages"]) for c in as_json] == [
        (ids["alpha"], "How do magnets work?", "alpha", 2)
    ]
    unknown = mlxui(home, "list", "--server", "gamma")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "No server named 'gamma'"


def test_export_markdown_and_json_then_import(home, tmp_path: Path) -> None:
    home, ids = home
    md = mlxui(home, "export", str(ids["alpha"]), "--format", "md")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# How do magnets work?\n")
    assert "Physics question." in md.stdout and "Moving charges." in md.stdout

    out = tmp_path / "chat.json"
    exported = mlxui(home, "export", str(ids["alpha"]), "--format", "json", "-o", str(out))
    assert exported.returncode == 0 and exported.stdout == ""
    data = json.loads(out.read_text())
    assert data["format"] == "mlxui-chat" and len(data["messages"]) == 2

    imported = mlxui(home, "import", str(out), "--server", "beta")
    assert imported.returncode == 0, imported.stderr
    assert (
        imported.stdout.startswith("Imported chat ")
        and "How do magnets work? (2 messages)" in imported.stdout
    )
    beta = json.loads(mlxui(home, "list", "--json", "--server", "beta").stdout)
    assert "How do magnets work?" in [c["title"] for c in beta]


def test_errors_are_one_clear_line(home, tmp_path: Path) -> None:
    home, _ = home
    missing = mlxui(home, "export", "999", "--format", "json")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "No chat with id 999 (see `mlxui chats list`)"
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something"}')
    refused = mlxui(home, "import", str(bad))
    assert refused.returncode == 1 and "Not a chat export" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # no traceback


def test_no_database_yet(tmp_path: Path) -> None:
    result = mlxui(tmp_path / "fresh", "list")
    assert (result.returncode, result.stdout.strip()) == (0, "No chats yet.")
    assert not (tmp_path / "fresh" / "mlxui.sqlite3").exists()  # listing created nothing
    missing = mlxui(tmp_path / "fresh", "export", "1")
    assert missing.returncode == 1 and "No chat with id 1" in missing.stderr
