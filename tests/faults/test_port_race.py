"""A port taken by another program after mlxui checked it and before the server bound it."""

from __future__ import annotations

import socket

import pytest

from mlxui.servers import process
from mlxui.servers.supervisor import ServerError, ServerState, Supervisor
from tests.harness.models import PLAIN_REPLY
from tests.test_supervisor import PLAIN, add_profile, chat, config, supervisor  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def squat() -> socket.socket:
    """Another program listening on a port of its own."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


async def test_an_automatic_port_taken_meanwhile_is_replaced_by_another(
    supervisor: Supervisor,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with squat() as holder:
        taken = holder.getsockname()[1]
        handed: list[int] = []
        real_free_port = process.free_port

        def racy_free_port() -> int:  # the first pick loses the race to the other program
            handed.append(taken if not handed else real_free_port())
            return handed[-1]

        monkeypatch.setattr(process, "free_port", racy_free_port)
        server = await add_profile(supervisor, name="auto", model=PLAIN)
        await supervisor.start("auto")
        assert server.state == ServerState.READY and handed[0] == taken and server.port == handed[-1] != taken
        assert await chat(server) == PLAIN_REPLY
        assert "Address already in use" in server.log_path.read_text(), "the lost race is in the log"
        holder.settimeout(5)
        with socket.create_connection(("127.0.0.1", taken), timeout=5):
            accepted, _ = holder.accept()  # a client of that port still reaches the other program
            accepted.close()


async def test_a_fixed_port_taken_after_the_check_fails_clearly_and_starts_once_free(
    supervisor: Supervisor,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holder = squat()
    port = holder.getsockname()[1]
    monkeypatch.setattr(process, "port_in_use", lambda _port: False)  # the check ran just before
    server = await add_profile(supervisor, name="fixed", model=PLAIN, port=port)
    with pytest.raises(
        ServerError, match=f"Port {port} was taken by another program while the server started"
    ):
        await supervisor.start("fixed")
    assert server.state == ServerState.FAILED and server.pid is None
    assert "Address already in use" in (server.error or ""), "the server's own words follow"
    holder.close()
    await supervisor.start("fixed")
    assert server.state == ServerState.READY and server.port == port
    assert await chat(server) == PLAIN_REPLY
