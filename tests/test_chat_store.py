"""Chats and messages in the database: nothing the user wrote or saw is ever lost."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from mlxui.chat.client import ContentDelta, ReasoningDelta
from mlxui.chat.images import ImageError, data_url
from mlxui.chat.store import INTERRUPTED, STOPPED, ChatNotFound, ChatStore, ChatStoreError, make_title
from mlxui.db import close_db, init_db
from mlxui.db.models import ServerProfile
from tests.harness.mlxserver import RunningServer, free_port
from tests.harness.models import ENDLESS_CYCLE, PLAIN_REPLY, THINK_CONTENT, THINK_REASONING

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def db(tmp_path: Path):
    path = tmp_path / "mlxui.sqlite3"
    await init_db(path)
    yield path
    await close_db()


@pytest.fixture
def store(db: Path, tmp_path: Path) -> ChatStore:
    return ChatStore(tmp_path / "images")


def image(fmt: str = "PNG", size: tuple[int, int] = (32, 24), color=(10, 200, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


# ----- chats --------------------------------------------------------------------------------------
async def test_chats_belong_to_a_server_and_list_newest_first(store: ChatStore) -> None:
    await ServerProfile.create(name="alpha", model="org/alpha")
    beta = (await ServerProfile.create(name="beta", model="org/beta")).id
    a1 = await store.create_chat("alpha")
    b1 = await store.create_chat(beta)
    a2 = await store.create_chat("alpha")
    assert a1.profile_name == "alpha" and b1.profile_name == "beta"
    assert [c.id for c in await store.list_chats("alpha")] == [a2.id, a1.id]
    await store.add_user_message(a1.id, "bump me")  # a new message moves a chat to the top
    assert [c.id for c in await store.list_chats("alpha")] == [a1.id, a2.id]
    assert [c.id for c in await store.list_chats(beta)] == [b1.id]
    await store.set_pinned(a2.id, True)
    assert [c.id for c in await store.list_chats("alpha")][0] == a2.id
    with pytest.raises(ChatStoreError, match="No server named 'gamma'"):
        await store.list_chats("gamma")


async def test_first_message_names_the_chat(store: ChatStore) -> None:
    chat = await store.create_chat()
    assert chat.title == "New chat"
    long = "  Explain   the difference between a process and a thread, with examples in Python please  "
    await store.add_user_message(chat.id, long)
    title = (await store.get_chat(chat.id)).title
    assert title == "Explain the difference between a process and a thread, with…"  # 61 characters
    await store.add_user_message(chat.id, "and another thing")
    assert (await store.get_chat(chat.id)).title == title  # only the first message names it
    assert (
        await store.rename_chat(chat.id, "  <b>Threads</b> ")
    ).title == "<b>Threads</b>"  # stored as typed
    with pytest.raises(ChatStoreError, match="cannot be empty"):
        await store.rename_chat(chat.id, "   ")
    assert make_title("", has_images=True) == "Image"
    assert make_title("x" * 100) == "x" * 60 + "…"


async def test_search_finds_titles_and_message_text(store: ChatStore) -> None:
    await ServerProfile.bulk_create([ServerProfile(name=n, model=f"org/{n}") for n in ("alpha", "beta")])
    cats = await store.create_chat("alpha", title="About cats")
    dogs = await store.create_chat("alpha")
    await store.add_user_message(dogs.id, "Tell me about DOGS and 100% loyalty")
    other = await store.create_chat("beta")
    await store.add_user_message(other.id, "dogs again")
    assert {c.id for c in await store.search_chats("dogs")} == {dogs.id, other.id}
    assert [c.id for c in await store.search_chats("dogs", "alpha")] == [dogs.id]
    assert [c.id for c in await store.search_chats("CAT")] == [cats.id]
    assert [c.id for c in await store.search_chats("100%")] == [dogs.id]
    assert await store.search_chats("%") == await store.search_chats("100%")  # % is text, not a wildcard
    assert await store.search_chats("zebra") == []


async def test_settings_are_per_chat_and_checked(store: ChatStore) -> None:
    chat = await store.create_chat()
    other = await store.create_chat()
    changed = await store.update_settings(
        chat.id, system_prompt="Be brief.", temperature=0.2, max_tokens=64, thinking=False
    )
    assert (changed.system_prompt, changed.temperature, changed.max_tokens, changed.thinking) == (
        "Be brief.",
        0.2,
        64,
        False,
    )
    changed = await store.update_settings(chat.id, thinking=None)  # back to the model's default
    assert (changed.thinking, changed.temperature) == (None, 0.2)
    assert (await store.get_chat(other.id)).system_prompt == ""
    for bad in ({"temperature": 3}, {"max_tokens": 0}, {"max_tokens": 1.5}, {"thinking": "yes"}):
        with pytest.raises(ChatStoreError):
            await store.update_settings(chat.id, **bad)


async def test_delete_removes_messages_and_unshared_images(store: ChatStore, tmp_path: Path) -> None:
    shared = await store.attach_image(image(color=(1, 2, 3)), "shared.png")
    own = await store.attach_image(image(color=(4, 5, 6)), "own.png")
    doomed = await store.create_chat()
    await store.add_user_message(doomed.id, "look", [shared, own])
    kept = await store.create_chat()
    await store.add_user_message(kept.id, "same picture", [shared])
    await store.delete_chat(doomed.id)
    with pytest.raises(ChatNotFound):
        await store.messages(doomed.id)
    assert not (tmp_path / "images" / own["path"]).exists()
    assert (tmp_path / "images" / shared["path"]).exists()  # still used by the other chat
    assert [m.content for m in await store.messages(kept.id)] == ["same picture"]


# ----- messages and replies -----------------------------------------------------------------------
async def test_user_message_is_saved_before_sending_and_survives_restart(store: ChatStore, db: Path) -> None:
    chat = await store.create_chat()
    await store.add_user_message(chat.id, "hello?")
    handle = await store.start_reply(chat.id)
    handle.add(ContentDelta("Hi"))  # still streaming when mlxui goes away
    await close_db()
    await init_db(db)
    messages = await store.messages(chat.id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "hello?", "complete"),
        ("assistant", "", "partial"),
    ]
    assert messages[1].error == INTERRUPTED
    with pytest.raises(ChatStoreError, match="Type a message"):
        await store.add_user_message(chat.id, "   ")


async def test_reply_is_saved_periodically_while_streaming(db: Path, tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "images", autosave_s=0.0)
    chat = await store.create_chat()
    await store.add_user_message(chat.id, "q")
    handle = await store.start_reply(chat.id)
    await handle.feed(ReasoningDelta("hmm"))
    await handle.feed(ContentDelta("Half an answ"))
    await close_db()  # as if mlxui died here
    await init_db(db)
    reply = (await store.messages(chat.id))[-1]
    assert (reply.content, reply.reasoning, reply.status, reply.error) == (
        "Half an answ",
        "hmm",
        "partial",
        INTERRUPTED,
    )


async def test_stop_and_failure_keep_the_text(store: ChatStore) -> None:
    chat = await store.create_chat()
    await store.add_user_message(chat.id, "q")
    handle = await store.start_reply(chat.id)
    handle.add(ContentDelta("Partial"))
    stopped = await handle.stop(metrics={"ttft_s": 0.1})
    assert (stopped.status, stopped.error, stopped.content, stopped.metrics) == (
        "partial",
        STOPPED,
        "Partial",
        {"ttft_s": 0.1},
    )
    assert (await handle.fail("later")).status == "partial"  # the first outcome stands
    await store.add_user_message(chat.id, "again")
    handle = await store.start_reply(chat.id)
    handle.add(ContentDelta("Some text"))
    failed = await handle.fail("The connection to the server was lost during the reply.")
    assert (failed.status, failed.content) == ("failed", "Some text")
    history = await store.history_for_model(chat.id)
    # The stopped reply is part of the conversation; the failed one is not sent back.
    assert history == [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "Partial"}, {"role": "user", "content": "again"},
    ]  # fmt: skip


async def test_history_has_system_prompt_first_and_images_as_data_urls(
    store: ChatStore, tmp_path: Path
) -> None:
    chat = await store.create_chat()
    await store.update_settings(chat.id, system_prompt="You are terse.")
    picture = await store.attach_image(image(), "cat.png")
    await store.add_user_message(chat.id, "what is it?", [picture])
    handle = await store.start_reply(chat.id)
    handle.add(ReasoningDelta("thinking is not sent back"))
    handle.add(ContentDelta("A square."))
    await handle.complete()
    await store.add_user_message(chat.id, "sure?")
    history = await store.history_for_model(chat.id)
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user"]
    assert history[0]["content"] == "You are terse."
    parts = history[1]["content"]
    assert parts[0] == {"type": "text", "text": "what is it?"}
    assert parts[1]["image_url"]["url"] == data_url(picture, tmp_path / "images")
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert history[2] == {"role": "assistant", "content": "A square."}


async def test_regenerate_and_edit_last_message(store: ChatStore) -> None:
    chat = await store.create_chat()
    await store.add_user_message(chat.id, "first")
    await (await store.start_reply(chat.id)).complete()
    await store.add_user_message(chat.id, "secnod")
    handle = await store.start_reply(chat.id)
    handle.add(ContentDelta("What is secnod?"))
    await handle.complete()
    history = await store.regenerate(chat.id)
    assert history[-1] == {"role": "user", "content": "secnod"}
    assert [m.role for m in await store.messages(chat.id)] == ["user", "assistant", "user"]
    handle = await store.start_reply(chat.id)
    handle.add(ContentDelta("Still confused"))
    await handle.complete()
    history = await store.edit_last_user_message(chat.id, "second")
    assert history[-1] == {"role": "user", "content": "second"}
    assert [(m.role, m.content) for m in await store.messages(chat.id)][-1] == ("user", "second")
    with pytest.raises(ChatStoreError, match="no message to answer"):
        await store.regenerate((await store.create_chat()).id)


async def test_images_are_checked_by_their_bytes(store: ChatStore, tmp_path: Path) -> None:
    for fmt, mime in (
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("WEBP", "image/webp"),
        ("GIF", "image/gif"),
    ):
        attachment = await store.attach_image(image(fmt, (40, 30)), f"picture.{fmt.lower()}")
        assert (attachment["mime"], attachment["width"], attachment["height"]) == (mime, 40, 30)
        assert (tmp_path / "images" / attachment["path"]).read_bytes() == image(fmt, (40, 30))
    with pytest.raises(
        ImageError, match=r"^That file is not an image mlxui can send \(png, jpeg, webp or gif\)$"
    ):
        await store.attach_image(b"<svg onload=alert(1)></svg>", "evil.png")  # the name does not matter
    with pytest.raises(ImageError, match="damaged"):
        await store.attach_image(image()[:60], "cut.png")
    big = b"\x89PNG\r\n\x1a\n" + bytes(12_300_000 - 8)
    with pytest.raises(ImageError, match=r"^Image too large: 12\.3 MB, the limit is 10 MB$"):
        await store.attach_image(big)
    chat = await store.create_chat()
    with pytest.raises((ImageError, ChatStoreError)):
        await store.add_user_message(chat.id, "x", [{"path": "../mlxui.sqlite3", "mime": "image/png"}])
    with pytest.raises(ImageError):
        data_url({"path": "../../etc/passwd"}, tmp_path / "images")
    assert await store.messages(chat.id) == []


# ----- with real servers --------------------------------------------------------------------------
@pytest.mark.slow
async def test_reply_streams_saves_and_measures(
    store: ChatStore, plain_server: RunningServer, think_tokens_server: RunningServer
) -> None:
    chat = await store.create_chat()
    await store.add_user_message(chat.id, "hi")
    seen: list[str] = []
    reply = await store.reply(
        chat.id,
        model=plain_server.model,
        base_url=plain_server.base_url,
        on_update=lambda h: seen.append(h.content),
    )
    assert (reply.content, reply.status, reply.error) == (PLAIN_REPLY, "complete", None)
    assert seen[0] != PLAIN_REPLY and seen[-1] == PLAIN_REPLY  # the page saw it grow
    assert reply.metrics["completion_tokens"] == 9 and reply.metrics["tokens_per_s"] > 0
    assert reply.metrics["ttft_s"] > 0 and reply.metrics["model"] == plain_server.model
    assert (await store.messages(chat.id))[-1] == reply

    chat = await store.create_chat()  # thinking arrives in the delta `reasoning` field
    await store.add_user_message(chat.id, "hi")
    reply = await store.reply(chat.id, model=think_tokens_server.model, base_url=think_tokens_server.base_url)
    assert (reply.reasoning, reply.content) == (THINK_REASONING, THINK_CONTENT)
    m = reply.metrics  # thinking is timed from the first reasoning token (3e-4: rounding slack)
    assert 0 <= m["thinking_s"] <= m["total_s"] - m["ttft_s"] + 3e-4, m
    assert (await store.messages(chat.id))[-1] == reply, "kept as measured"


@pytest.mark.slow
async def test_stop_saves_a_partial_reply(store: ChatStore, endless_server: RunningServer) -> None:
    chat = await store.create_chat()
    await store.update_settings(chat.id, max_tokens=100_000)
    await store.add_user_message(chat.id, "sing")
    enough = asyncio.Event()
    task = asyncio.create_task(
        store.reply(chat.id, model=endless_server.model, base_url=endless_server.base_url,
                    on_update=lambda h: len(h.content) > 100 and enough.set())
    )  # fmt: skip
    await asyncio.wait_for(enough.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    reply = (await store.messages(chat.id))[-1]
    assert (reply.status, reply.error) == ("partial", STOPPED)
    assert reply.content.startswith(ENDLESS_CYCLE * 5)
    assert reply.metrics["ttft_s"] > 0


@pytest.mark.slow
async def test_unreachable_server_fails_the_reply_with_a_reason(store: ChatStore) -> None:
    chat = await store.create_chat()
    await store.add_user_message(chat.id, "anyone?")
    with pytest.raises(ChatStoreError, match="no model"):  # no profile, no model: nothing to send to
        await store.reply(chat.id, base_url="http://127.0.0.1:1")
    reply = await store.reply(chat.id, model="x", base_url=f"http://127.0.0.1:{free_port()}")
    assert reply.status == "failed" and "not running" in reply.error
    assert [m.role for m in await store.messages(chat.id)] == ["user", "assistant"]


@pytest.mark.slow
async def test_vision_chat_sends_the_stored_image(store: ChatStore, vlm_server: RunningServer) -> None:
    chat = await store.create_chat()
    await store.update_settings(chat.id, max_tokens=4)
    await store.add_user_message(chat.id, "what is this", [await store.attach_image(image(size=(64, 64)))])
    with_image = await store.reply(chat.id, model=vlm_server.model, base_url=vlm_server.base_url)
    other = await store.create_chat()
    await store.update_settings(other.id, max_tokens=4)
    await store.add_user_message(other.id, "what is this")
    text_only = await store.reply(other.id, model=vlm_server.model, base_url=vlm_server.base_url)
    assert with_image.status == "complete", with_image.error
    assert with_image.metrics["prompt_tokens"] > text_only.metrics["prompt_tokens"]


KILLED_APP = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from mlxui.chat.client import ContentDelta
    from mlxui.chat.store import ChatStore
    from mlxui.db import init_db

    async def main(db, images, base_url, model):
        await init_db(Path(db))
        store = ChatStore(Path(images), autosave_s=0.2)
        chat = await store.create_chat()
        await store.update_settings(chat.id, max_tokens=100_000)
        await store.add_user_message(chat.id, "earlier question")
        handle = await store.start_reply(chat.id)
        handle.add(ContentDelta("earlier answer"))
        await handle.complete()
        await store.add_user_message(chat.id, "sing forever")
        said = []
        def on_update(h):
            if len(h.content) > 200 and not said:
                said.append(print("STREAMING", chat.id, flush=True))
        await store.reply(chat.id, model=model, base_url=base_url, on_update=on_update)

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.slow
async def test_kill_9_mid_reply_keeps_every_earlier_message(
    db: Path, tmp_path: Path, endless_server: RunningServer
) -> None:
    await close_db()
    args = [
        sys.executable,
        "-c",
        KILLED_APP,
        str(db),
        str(tmp_path / "images"),
        endless_server.base_url,
        endless_server.model,
    ]
    app = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(app.stdout.readline), 30)
        assert line.startswith("STREAMING"), line
        await asyncio.sleep(0.6)  # at least two autosaves
        os.kill(app.pid, signal.SIGKILL)
    finally:
        app.kill()
        app.wait(10)
        app.stdout.close()
    chat_id = int(line.split()[1])
    await init_db(db)
    messages = await ChatStore(tmp_path / "images").messages(chat_id)
    assert [(m.role, m.content, m.status) for m in messages[:3]] == [
        ("user", "earlier question", "complete"), ("assistant", "earlier answer", "complete"),
        ("user", "sing forever", "complete"),
    ]  # fmt: skip
    last = messages[3]
    assert (last.role, last.status, last.error) == ("assistant", "partial", INTERRUPTED)
    assert last.content.startswith(ENDLESS_CYCLE * 10)  # most of what streamed was saved
