"""Memory-aware scheduling on real servers (issue 14): a start fits the budget or stops idle
servers to make room, waits for busy ones, never stops a pinned one, refuses what can never fit,
and learns each model's plan from what its server really used.

The plans are set to 1 GB each (more than these tiny servers use) so that budgets in multiples
of a plan bind on any machine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import psutil
import pytest

from mlxui import db
from mlxui.config import Config
from mlxui.servers.state import RUNNING_STATES, ServerState
from mlxui.servers.supervisor import Supervisor
from tests.harness.fixtures_models import HubCache
from tests.harness.models import PLAIN_REPLY, THINK_CONTENT
from tests.test_gateway import GatewayApp

pytestmark = pytest.mark.slow

PLAN = 1024**3  # 1 GB (binary, as the budget reads): more than any of these tiny servers uses
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayApp]:
    profiles = [
        {"name": "a", "model": hub_cache.repos["plain"]},
        {"name": "b", "model": hub_cache.repos["think_tokens"]},
        {"name": "c", "model": hub_cache.repos["think_text"]},
        {"name": "long", "model": hub_cache.repos["endless"]},
        {"name": "kept", "model": hub_cache.repos["plain"], "pinned": True},
    ]
    config = Config(home=tmp_path_factory.mktemp("sched-home"), hf_cache=hub_cache.cache_dir)
    with GatewayApp(config, profiles) as app:
        yield app


@pytest.fixture
def budget(gw: GatewayApp) -> Iterator[callable]:
    """Set the budget in plans; every server stopped and every plan 1 GB before each test."""
    sup = gw.supervisor

    def set_budget(plans: float) -> None:
        sup.memory_budget = lambda: int(plans * PLAN)  # type: ignore[method-assign]

    for server in sup.servers.values():
        sup.plans.remember(server.name, server.profile.model, PLAN)
    yield set_budget
    stop_all(gw)
    del sup.memory_budget  # the method again


def stop_all(gw: GatewayApp) -> None:
    future = asyncio.run_coroutine_threadsafe(_stop_all(gw.supervisor), gw.loop)
    future.result(timeout=60)
    for server in gw.supervisor.servers.values():
        gw.supervisor.plans.remember(server.name, server.profile.model, PLAN)


async def _stop_all(sup: Supervisor) -> None:
    await asyncio.gather(*(sup.stop(s.name) for s in sup.servers.values() if s.state in RUNNING_STATES))


def state(gw: GatewayApp, name: str) -> ServerState:
    return gw.supervisor.servers[name].state


def running(gw: GatewayApp) -> list[str]:
    return sorted(s.name for s in gw.supervisor.servers.values() if s.state in RUNNING_STATES)


def ask(gw: GatewayApp, model: str) -> str:
    return gw.client(timeout=180).chat.completions.create(model=model, messages=HI).choices[0].message.content


def test_a_request_for_b_stops_idle_a_to_make_room(gw: GatewayApp, budget) -> None:
    budget(1.5)
    assert ask(gw, "a") == PLAIN_REPLY
    assert ask(gw, "b").endswith(THINK_CONTENT)
    a = gw.supervisor.servers["a"]
    assert (a.state, state(gw, "b")) == (ServerState.STOPPED, ServerState.READY)
    assert a.note == "Stopped to make room for b" and a.metrics.evictions == 1
    metrics = gw.client()._client.get(f"{gw.url}/metrics").text  # the counter Prometheus sees
    assert 'mlxui_server_evictions_total{profile="a"} 1.0' in metrics


def test_a_busy_server_is_never_stopped_mid_answer(gw: GatewayApp, budget) -> None:
    budget(1.5)
    stream = gw.client(timeout=180).chat.completions.create(
        model="long", messages=HI, stream=True, max_tokens=100_000
    )
    chunks = iter(stream)
    next(chunks)  # "long" is answering
    answer: dict[str, str] = {}
    waiter = threading.Thread(target=lambda: answer.update(b=ask(gw, "b")), daemon=True)
    waiter.start()
    time.sleep(3)
    waiting = {s.name: why for s, why in gw.supervisor.scheduler.waiting.items()}
    assert waiting == {"b": "waiting for long to finish (memory budget 1.5 GB)"}
    assert state(gw, "long") == ServerState.READY and state(gw, "b") == ServerState.STOPPED
    for _ in range(20):
        next(chunks)  # still streaming while b waits
    stream.close()  # the answer ends: now "long" is idle and b may take its place
    waiter.join(timeout=120)
    assert answer["b"].endswith(THINK_CONTENT)
    assert state(gw, "long") == ServerState.STOPPED and gw.supervisor.servers["long"].note


def test_a_pinned_server_is_never_stopped_and_the_refusal_says_why(gw: GatewayApp, budget) -> None:
    budget(1.5)
    assert ask(gw, "kept") == PLAIN_REPLY
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw, "c")
    assert caught.value.status_code == 503 and caught.value.body["code"] == "insufficient_memory"
    assert "held by kept, kept loaded (pinned): unpin it or raise the budget" in caught.value.body["message"]
    assert state(gw, "kept") == ServerState.READY and state(gw, "c") == ServerState.STOPPED


def test_a_model_larger_than_the_budget_is_refused_in_words(gw: GatewayApp, budget) -> None:
    budget(0.5)
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw, "a")
    assert caught.value.status_code == 503
    assert caught.value.body["message"] == (
        "a needs ~1 GB, and the memory budget is 512 MB: lower its context or raise the budget in Settings."
    )
    assert state(gw, "a") == ServerState.STOPPED, "nothing was spawned"
    assert gw.supervisor.servers["a"].note.startswith("a needs ~"), "the refusal shows where the server shows"


def test_three_models_under_a_two_model_budget_all_answer(gw: GatewayApp, budget) -> None:
    budget(2.2)
    most, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], len(running(gw)))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    answers: dict[str, str] = {}
    askers = [threading.Thread(target=lambda m=m: answers.update({m: ask(gw, m)})) for m in ("a", "b", "c")]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(timeout=240)
    done.set()
    watcher.join()
    assert answers["a"] == PLAIN_REPLY and answers["b"].endswith(THINK_CONTENT) and answers["c"]
    assert most[0] == 2, "never more than the budget holds, and two at once when they fit"


async def test_the_plan_is_the_measured_peak_and_survives_a_restart(
    tmp_path: Path, hub_cache: HubCache
) -> None:
    await db.init_db(tmp_path / "mlxui.sqlite3")
    config = Config(home=tmp_path / "home", hf_cache=hub_cache.cache_dir)
    try:
        sup = Supervisor(config, sampler_interval=0.1, ready_timeout=60)
        await sup.start_up()
        await sup.profiles.create({"name": "a", "model": hub_cache.repos["plain"]})
        estimate = sup.plans.plan(sup.servers["a"])
        server = await sup.start("a")
        peak = 0
        for _ in range(30):  # our own reading of the process tree, 3 s
            tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
            await asyncio.sleep(0.1)
        await sup.stop("a")
        await sup.shut_down()
        measured = sup.plans.measured(server)
        assert measured is not None and abs(measured - peak) <= 0.1 * peak, (measured, peak, estimate)

        again = Supervisor(config)
        await again.start_up()
        assert again.plans.plan(again.servers["a"]) == measured, "remembered across an app restart"
        await again.shut_down()
    finally:
        await db.close_db()
