"""The Settings card "Other mlxui machines" with NiceGUI's simulated user (no browser): a refused
address says why under the field and saves nothing; a machine that does not answer shows down with
the reason; removing it empties the list. The browser test with two real apps is test_peers_pages.py."""

from __future__ import annotations

from nicegui.testing.user import User

from mlxui import db
from tests.harness.app_process import free_port


async def test_the_card_checks_adds_shows_down_and_removes(user: User) -> None:
    await user.open("/settings")
    await user.should_see(marker="peer-none")
    user.find(marker="peer-url").type("http://user:pw@127.0.0.1:9")
    user.find(marker="peer-add").click()
    await user.should_see("Put no user or password in the address")
    assert await db.get_setting("peers.list", None) is None, "nothing saved"

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    user.find(marker="peer-url").clear().type(url)
    user.find(marker="peer-key").type("their-key-123")
    user.find(marker="peer-name").type("Gone")
    user.find(marker="peer-add").click()
    await user.should_see(marker="peer-row-gone")
    await user.should_see(marker="peer-state-gone", content="down: cannot connect", retries=30)
    assert await db.get_setting("peers.list") == [{"name": "gone", "url": url, "key": "their-key-123"}]
    await user.should_not_see("their-key-123")

    user.find(marker="peer-remove-gone").click()
    await user.should_see(marker="peer-none")
    assert await db.get_setting("peers.list") == []
