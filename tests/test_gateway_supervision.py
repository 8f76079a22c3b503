"""Supervision through the gateway, with real servers: the crash loop guard (a crashed server is
restarted by the next request, three times in five minutes at most) and a request's `keep_alive`."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psutil
import pytest
from fastapi import FastAPI

from mlxui.config import Config
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import ServerState
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.harness.models import PLAIN_REPLY
from tests.harness.waiting import wait_until
from tests.test_gateway import HI, GatewayApp

pytestmark = pytest.mark.slow
LOOP_SENTENCE = "looping crashed 4 times in 5 minutes; it stays stopped until you start it: see its log"


class SupervisedGateway(GatewayApp):
    """GatewayApp, plus a way to call the supervisor on its own event loop (a user's start)."""

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI):
        self.loop = asyncio.get_running_loop()
        async with super()._lifespan(app):
            yield

    def call(self, work: Coroutine[Any, Any, Any], timeout: float = 90) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def managed(self, name: str) -> ManagedServer:
        return self.supervisor.servers[name]

    def ask(self, model: str, **extra: Any) -> httpx.Response:
        body = {"model": model, "messages": HI, **extra}
        return httpx.post(self.url + "/v1/chat/completions", json=body, timeout=90)


@pytest.fixture(scope="module")
def gw(
    model_dirs: ModelDirs, hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SupervisedGateway]:
    home = tmp_path_factory.mktemp("supervision-home")
    plain = str(model_dirs.plain)
    profiles = [
        {"name": "crashy", "model": plain},
        {"name": "looping", "model": plain},
        {"name": "once", "model": plain},
        {"name": "briefly", "model": plain},
        {"name": "forever", "model": plain, "idle_ttl": 1},
    ]
    with SupervisedGateway(Config(home=home, hf_cache=hub_cache.cache_dir), profiles) as app:
        yield app


def _answered(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == PLAIN_REPLY


def _crash(gw: SupervisedGateway, name: str) -> None:
    server = gw.managed(name)
    assert server.state == ServerState.READY and server.pid is not None
    os.killpg(server.pid, signal.SIGKILL)
    wait_until(lambda: server.state == ServerState.CRASHED, 3.0, f"{name} crashed")


def test_a_crashed_server_is_restarted_by_the_next_request(gw: SupervisedGateway) -> None:
    server = gw.call(gw.supervisor.start("crashy"))  # a user's start: not on demand
    first = server.pid
    _crash(gw, "crashy")
    assert "killed by SIGKILL" in server.error
    _answered(gw.ask("crashy"))
    assert server.state == ServerState.READY and server.pid not in (None, first)
    assert not server.on_demand  # restarted as it was started: the idle TTL still does not apply
    assert server.crash_guard.crashes() == 1 and server.crash_guard.may_restart()


def test_the_fourth_crash_in_five_minutes_stays_down_until_a_user_starts_it(gw: SupervisedGateway) -> None:
    server = gw.managed("looping")
    pids: list[int] = []
    for _ in range(4):  # the first start, then three automatic restarts
        _answered(gw.ask("looping"))
        assert server.pid is not None and server.pid not in pids
        pids.append(server.pid)
        _crash(gw, "looping")
    started = time.monotonic()
    refused = gw.ask("looping")
    assert time.monotonic() - started < 1.0  # no fifth start
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "model_crashed" and error["type"] == "server_error"
    assert error["message"].startswith(LOOP_SENTENCE)
    assert "retry-after" not in refused.headers  # it will not come back by itself
    assert server.state == ServerState.CRASHED and server.pid is None
    assert "killed by SIGKILL" in server.error and len(server.error.splitlines()) > 1  # with its log tail
    assert gw.starts.count("looping") == 4
    gw.call(gw.supervisor.start("looping"))  # the user's start resets the guard
    _answered(gw.ask("looping"))
    assert server.pid not in pids and server.crash_guard.may_restart()
    gw.call(gw.supervisor.stop("looping"))


def test_a_bad_keep_alive_is_400_and_starts_nothing(gw: SupervisedGateway) -> None:
    starts = len(gw.starts)
    for bad in ("soon", True, [5], "5 minutes"):
        refused = gw.ask("once", keep_alive=bad)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_keep_alive"
        assert error["message"].startswith("keep_alive takes seconds or a duration like")
    assert len(gw.starts) == starts and gw.managed("once").state == ServerState.STOPPED


def test_keep_alive_0_stops_the_server_right_after_the_answer(gw: SupervisedGateway) -> None:
    server = gw.managed("once")
    _answered(gw.ask("once", keep_alive=0, stream=False))  # mlx_lm never sees the field
    answered = time.monotonic()
    pid = server.pid
    wait_until(lambda: server.state == ServerState.STOPPED, 2.0, "once stopped")
    assert time.monotonic() - answered < 2.0 and pid is not None and not _alive(pid)
    assert server.keep_alive is None  # the override lasts while that process runs


def test_keep_alive_duration_stops_a_server_started_by_hand(gw: SupervisedGateway) -> None:
    server = gw.call(gw.supervisor.start("briefly"))
    assert not server.on_demand and server.profile.idle_ttl is None  # no idle stop of its own
    _answered(gw.ask("briefly", keep_alive="2s"))
    answered = time.monotonic()
    time.sleep(1.2)
    assert server.state == ServerState.READY
    wait_until(lambda: server.state == ServerState.STOPPED, 3.0, "briefly stopped")
    assert 1.9 < time.monotonic() - answered < 3.5


def test_negative_keep_alive_outlasts_the_profile_idle_ttl(gw: SupervisedGateway) -> None:
    server = gw.managed("forever")
    _answered(gw.ask("forever", keep_alive=-1))
    assert server.on_demand and server.profile.idle_ttl == 1
    time.sleep(2.5)
    assert server.state == ServerState.READY
    _answered(gw.ask("forever"))  # a request without keep_alive leaves the override as it is
    time.sleep(1.5)
    assert server.state == ServerState.READY
    _answered(gw.ask("forever", keep_alive="0s"))  # the next keep_alive changes it
    wait_until(lambda: server.state == ServerState.STOPPED, 2.0, "forever stopped")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
