"""The road the other API dialects take to a model: OpenAI chat through `ModelCalls`, with the same
names, on-demand start, busy marking, usage counting and errors as the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlxui.config import Config
from mlxui.db import close_db, init_db
from mlxui.servers.model_calls import CallError, ModelCalls
from mlxui.servers.state import ServerState
from mlxui.servers.supervisor import Supervisor
from tests.harness.fixtures_models import HubCache
from tests.harness.models import PLAIN_REPLY

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def calls(tmp_path: Path, hub_cache: HubCache) -> AsyncIterator[ModelCalls]:
    await init_db(tmp_path / "mlxui.sqlite3")
    sup = Supervisor(Config(home=tmp_path / "home", hf_cache=hub_cache.cache_dir), sampler_interval=0.2)
    await sup.start_up()
    try:
        yield ModelCalls(sup)
    finally:
        await sup.shut_down(stop_servers=True)
        await close_db()


async def test_whole_and_streamed_answers_by_short_name_start_the_model_and_count_usage(
    calls: ModelCalls,
) -> None:
    async with calls.chat("scripted-plain", {"messages": HI}) as answer:
        assert answer.whole["choices"][0]["message"]["content"] == PLAIN_REPLY
        server = answer.server
        assert server.active_requests == 1, "busy while the call is open"
    assert server.state == ServerState.READY and server.active_requests == 0
    async with calls.chat("mlxui-test/scripted-plain", {"messages": HI, "stream": True}) as answer:
        chunks = [chunk async for chunk in answer.chunks()]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == PLAIN_REPLY
    assert chunks[-1]["choices"] == [] and answer.usage["completion_tokens"] > 0
    assert server.metrics.requests == 2
    assert server.metrics.completion_tokens_total == 2 * answer.usage["completion_tokens"]


async def test_unknown_names_and_bad_requests_are_call_errors(calls: ModelCalls) -> None:
    with pytest.raises(CallError) as unknown:
        async with calls.chat("scripted-plian", {"messages": HI}):
            pass
    assert (unknown.value.status, unknown.value.code) == (404, "model_not_found")
    assert "scripted-plain" in unknown.value.message
    with pytest.raises(CallError) as refused:  # request_checks.py: before any server sees it
        async with calls.chat("scripted-plain", {"messages": "not a list"}):
            pass
    assert (refused.value.status, refused.value.code) == (400, "messages_required")
    with pytest.raises(CallError) as bad:  # the server's own refusal, passed on
        async with calls.chat("scripted-plain", {"messages": HI, "max_tokens": 0}):
            pass
    assert bad.value.status == 400 and bad.value.message.startswith("model server:")
