"""The OpenAI-compatible gateway against real mlx_lm.server processes run by the real Supervisor.

The gateway is registered on a small FastAPI app (with the Host/Origin guard, as in the app)
served by uvicorn in a thread, so tests can watch the supervisor's state while they call
`/v1/*` over real HTTP with the official `openai` client. Every profile starts on demand.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import openai
import psutil
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.middleware.base import BaseHTTPMiddleware

from mlxui import db
from mlxui.config import Config
from mlxui.security import HostOriginGuard, HostPolicy
from mlxui.servers.gateway import register_gateway
from mlxui.servers.state import ServerEvent, ServerState
from mlxui.servers.supervisor import Supervisor
from tests.harness import procguard
from tests.harness.app_process import free_port, running_app
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.harness.models import ENDLESS_CYCLE, PLAIN_REPLY, PLAIN_TOKENS
from tests.harness.waiting import wait_until

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]


class GatewayApp:
    """uvicorn in a thread: FastAPI + guard + gateway + a real Supervisor with our profiles."""

    def __init__(self, config: Config, profiles: list[dict]) -> None:
        self.config = config
        self.profiles = profiles
        self.api_key: str | None = None
        self.starts: list[str] = []  # profile names, once per STARTING transition
        self._pids: dict[str, int] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.supervisor = Supervisor(config, sampler_interval=0.25, ready_timeout=60)
        app = FastAPI(lifespan=self._lifespan)
        app.add_middleware(HostOriginGuard, policy=HostPolicy("127.0.0.1"))
        register_gateway(app, self.supervisor, api_key_provider=lambda: self.api_key)
        # Like the middlewares ui.run adds after create_app: the gateway must stay in front of them.
        app.add_middleware(BaseHTTPMiddleware, dispatch=_mark_response)
        app.add_api_route("/page", lambda: PlainTextResponse("a page"))
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="gateway-app", daemon=True)

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI):
        self.loop = asyncio.get_running_loop()  # tests run supervisor calls here (run_coroutine_threadsafe)
        await db.init_db(self.config.db_path)
        for values in self.profiles:
            await self.supervisor.profiles.create(values)
        self.supervisor.on_change(self._on_change)
        await self.supervisor.start_up()
        try:
            yield
        finally:
            await self.supervisor.shut_down(stop_servers=True)
            await db.close_db()

    def _on_change(self, event: ServerEvent) -> None:
        server = event.server
        if event.kind != "state":
            return
        if server.state == ServerState.STARTING:
            self.starts.append(server.name)
        elif server.state == ServerState.LOADING and server.pid is not None:
            self._pids[server.name] = server.pid
            procguard.keep(server.pid)  # lives across tests; stopped at module teardown
        elif server.state in (ServerState.STOPPED, ServerState.FAILED, ServerState.CRASHED):
            pid = self._pids.pop(server.name, None)
            if pid is not None:
                procguard.release(pid)

    def __enter__(self) -> GatewayApp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def client(self, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("api_key", "unused")
        return openai.OpenAI(base_url=self.url + "/v1", max_retries=0, **kwargs)

    def metrics(self, name: str):
        return self.supervisor.servers[name].metrics


async def _mark_response(request, call_next):
    response = await call_next(request)
    response.headers["x-inner-middleware"] = "1"
    return response


@pytest.fixture(scope="module")
def gw(
    model_dirs: ModelDirs, hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayApp]:
    home = tmp_path_factory.mktemp("gateway-home")
    broken = tmp_path_factory.mktemp("broken-model")
    (broken / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    profiles = [
        {"name": "plain", "model": hub_cache.repos["plain"]},
        {"name": "endless", "model": hub_cache.repos["endless"]},
        {"name": "ondemand", "model": str(model_dirs.plain)},
        {"name": "crashy", "model": str(model_dirs.endless)},
        {"name": "broken", "model": str(broken), "kind": "lm"},
        {"name": "vision", "model": hub_cache.repos["vlm"]},
    ]
    with GatewayApp(Config(home=home, hf_cache=hub_cache.cache_dir), profiles) as app:
        yield app


def test_scripted_reply_stream_and_non_stream_with_exact_token_totals(gw: GatewayApp) -> None:
    client = gw.client()
    whole = client.chat.completions.create(model="plain", messages=HI)
    assert whole.choices[0].message.content == PLAIN_REPLY
    completion_tokens, prompt_tokens = whole.usage.completion_tokens, whole.usage.prompt_tokens
    assert completion_tokens == len(PLAIN_TOKENS) + 1  # the script, then EOS
    before = gw.metrics("plain")
    totals = (before.requests, before.prompt_tokens_total, before.completion_tokens_total)

    plain_chunks = list(client.chat.completions.create(model="plain", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in plain_chunks if c.choices) == PLAIN_REPLY
    assert all(c.usage is None for c in plain_chunks)  # not asked for: the gateway's usage chunk is dropped

    usage_chunks = list(
        client.chat.completions.create(
            model="plain", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in usage_chunks if c.choices) == PLAIN_REPLY
    assert usage_chunks[-1].choices == [] and usage_chunks[-1].usage.completion_tokens == completion_tokens

    after = gw.metrics("plain")
    assert (after.requests, after.prompt_tokens_total, after.completion_tokens_total) == (
        totals[0] + 2,
        totals[1] + 2 * prompt_tokens,
        totals[2] + 2 * completion_tokens,
    )


def test_text_completions_and_routing_by_repo_id(gw: GatewayApp, hub_cache: HubCache) -> None:
    client = gw.client()
    text = client.completions.create(model=hub_cache.repos["plain"], prompt="hi", max_tokens=20)
    assert text.choices[0].text == PLAIN_REPLY
    streamed = client.completions.create(model="plain", prompt="hi", max_tokens=20, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == PLAIN_REPLY


def test_vision_server_streams_through_the_gateway(gw: GatewayApp) -> None:
    """mlx_vlm.server (uvicorn) answers chunked, unlike mlx_lm.server: same results through the gateway."""
    client = gw.client()
    whole = client.chat.completions.create(model="vision", messages=HI, max_tokens=8, temperature=0)
    assert gw.supervisor.servers["vision"].kind == "vlm"
    chunks = list(
        client.chat.completions.create(model="vision", messages=HI, max_tokens=8, temperature=0, stream=True)
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == whole.choices[0].message.content
    )
    assert all(c.usage is None for c in chunks)
    metrics = gw.metrics("vision")
    assert metrics.requests == 2
    assert metrics.completion_tokens_total == 2 * whole.usage.completion_tokens > 0


def test_models_lists_profiles_and_every_local_model_without_one(gw: GatewayApp, hub_cache: HubCache) -> None:
    models = {m.id: m for m in gw.client().models.list()}
    profiles = {"plain", "endless", "ondemand", "crashy", "broken", "vision"}
    # Cached models that no profile uses are listed under their repo ids, ready to be named.
    unused = {"mlxui-test/tiny-llama", "mlxui-test/scripted-think-tokens", "mlxui-test/scripted-think-text"}
    assert set(models) == profiles | unused
    for name, model in models.items():
        assert model.model_extra["state"] == gw.supervisor.servers[name].state
        assert model.model_extra["source"] == ("profile" if name in profiles else "local")
    local = models["mlxui-test/tiny-llama"].model_extra
    assert local["state"] == "stopped" and local["aliases"] == ["tiny-llama"]
    assert local["memory"]["planned_bytes"] > 0 and local["capabilities"]["vision"] is False
    assert models["vision"].model_extra["capabilities"]["vision"] is True
    assert models["plain"].model_extra["model"] == hub_cache.repos["plain"]
    assert gw.client().models.retrieve("plain").id == "plain"
    assert gw.client().models.retrieve("tiny-llama").id == "mlxui-test/tiny-llama"


def test_unknown_model_is_404(gw: GatewayApp) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().chat.completions.create(model="nope", messages=HI)
    assert caught.value.body["code"] == "model_not_found"
    assert "nope" in caught.value.body["message"]


def test_a_model_answers_to_its_short_name_and_replies_carry_the_name_asked(gw: GatewayApp) -> None:
    client = gw.client()
    whole = client.chat.completions.create(model="scripted-plain", messages=HI)  # the repo's short name
    assert whole.choices[0].message.content == PLAIN_REPLY
    assert whole.model == "scripted-plain", "not the server's local path"
    chunks = list(client.chat.completions.create(model="PLAIN", messages=HI, stream=True))
    assert {c.model for c in chunks} == {"PLAIN"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == PLAIN_REPLY
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="plian", messages=HI)
    assert "Did you mean 'plain'?" in caught.value.body["message"]


def test_malformed_requests_are_400_and_413(gw: GatewayApp) -> None:
    url = gw.url + "/v1/chat/completions"
    bad_json = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    no_model = httpx.post(url, json={"messages": HI})
    assert no_model.status_code == 400 and "model" in no_model.json()["error"]["message"]
    huge = httpx.post(
        url, content=b"x" * (50 * 1024 * 1024 + 1), headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"


def test_on_demand_start_happens_once_under_8_concurrent_requests(gw: GatewayApp) -> None:
    assert gw.supervisor.servers["ondemand"].state == ServerState.STOPPED
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)

    async def ask() -> str:
        reply = await client.chat.completions.create(model="ondemand", messages=HI)
        return reply.choices[0].message.content

    async def all_of_them() -> list[str]:
        async with client:
            return await asyncio.gather(*(ask() for _ in range(8)))

    assert asyncio.run(all_of_them()) == [PLAIN_REPLY] * 8
    assert gw.starts.count("ondemand") == 1
    assert gw.supervisor.servers["ondemand"].state == ServerState.READY


def test_client_disconnect_frees_the_server_and_tokens_per_s_returns_to_0(gw: GatewayApp) -> None:
    body = {"model": "endless", "messages": HI, "max_tokens": 100_000, "stream": True}
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        started = time.monotonic()
        text = ""
        for line in response.iter_lines():
            if line.startswith("data: {"):
                text += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if time.monotonic() - started > 1.0:
                break
        assert text.startswith(ENDLESS_CYCLE * 3)
        assert gw.metrics("endless").tokens_per_s > 0
    # The gateway closed its upstream connection: the server stops generating at once.
    # Unstopped, it would generate 100,000 tokens at ~1,000/s using more than one core.
    server = psutil.Process(gw.supervisor.servers["endless"].pid)
    server.cpu_percent()
    wait_until(lambda: time.sleep(0.5) or server.cpu_percent() < 20, 3.0, "the server to go idle")
    started = time.monotonic()
    reply = gw.client().chat.completions.create(model="endless", messages=HI, max_tokens=6)
    assert time.monotonic() - started < 1.0
    assert reply.choices[0].message.content == ENDLESS_CYCLE * 2
    wait_until(lambda: gw.metrics("endless").tokens_per_s == 0, 3.0, "tokens/s back to 0")


def test_failed_profile_answers_503_with_the_reason(gw: GatewayApp) -> None:
    first = httpx.post(gw.url + "/v1/chat/completions", json={"model": "broken", "messages": HI}, timeout=90)
    assert first.status_code == 503
    assert first.headers["retry-after"].isdigit()
    assert first.json()["error"]["code"] == "model_failed"
    assert gw.supervisor.servers["broken"].state == ServerState.FAILED
    started = time.monotonic()
    again = httpx.post(gw.url + "/v1/chat/completions", json={"model": "broken", "messages": HI}, timeout=30)
    assert again.status_code == 503 and time.monotonic() - started < 1.0  # no second start right away


def test_server_killed_mid_stream_gives_an_error_then_restarts(gw: GatewayApp) -> None:
    client = gw.client()
    stream = client.chat.completions.create(model="crashy", messages=HI, max_tokens=100_000, stream=True)
    killed = gw.supervisor.servers["crashy"].pid
    with pytest.raises(openai.APIError) as caught:
        for n, _chunk in enumerate(stream):
            if n == 20:
                os.killpg(killed, signal.SIGKILL)
    assert "ended the stream early" in str(caught.value) or "broke" in str(caught.value)
    wait_until(lambda: gw.supervisor.servers["crashy"].state == ServerState.CRASHED, 2.0, "state crashed")
    # The next request restarts it (the crash loop guard allows three in five minutes).
    after = client.chat.completions.create(model="crashy", messages=HI, max_tokens=6, timeout=90)
    assert after.choices[0].message.content == ENDLESS_CYCLE * 2
    assert gw.supervisor.servers["crashy"].pid not in (None, killed)


def test_api_key_is_enforced_when_set(gw: GatewayApp) -> None:
    gw.api_key = "sekrit"
    try:
        assert httpx.get(gw.url + "/v1/models").status_code == 401
        wrong = httpx.get(gw.url + "/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            gw.client(api_key="nope").chat.completions.create(model="plain", messages=HI)
        reply = gw.client(api_key="sekrit").chat.completions.create(model="plain", messages=HI)
        assert reply.choices[0].message.content == PLAIN_REPLY
    finally:
        gw.api_key = None
    assert httpx.get(gw.url + "/v1/models").status_code == 200


_SAMPLE = re.compile(r'^([a-z_]+)\{profile="([^"\\]*)"(?:,state="([a-z]+)")?\} (-?[0-9.e+]+|NaN|[+-]Inf)$')
_META = re.compile(r"^# (HELP|TYPE) [a-z_]+ .+$")


def test_prometheus_metrics_parse_and_match_the_counters(gw: GatewayApp) -> None:
    gw.client().chat.completions.create(model="plain", messages=HI)
    response = httpx.get(gw.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, str, str | None], float] = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            assert _META.match(line), line
            continue
        match = _SAMPLE.match(line)
        assert match, f"unparsable line: {line!r}"
        samples[(match[1], match[2], match[3])] = float(match[4])
    plain = gw.metrics("plain")
    assert samples[("mlxui_server_state", "plain", "ready")] == 1
    assert samples[("mlxui_server_state", "plain", "stopped")] == 0
    assert samples[("mlxui_server_up", "plain", None)] == 1
    assert samples[("mlxui_server_requests_total", "plain", None)] == plain.requests >= 1
    assert samples[("mlxui_server_completion_tokens_total", "plain", None)] == plain.completion_tokens_total
    assert samples[("mlxui_server_memory_rss_bytes", "plain", None)] > 10_000_000
    assert ("mlxui_server_memory_rss_bytes", "broken", None) not in samples  # not running: no fake 0


def test_host_guard_covers_the_gateway_which_skips_later_middlewares(gw: GatewayApp) -> None:
    for path in ("/v1/models", "/metrics", "/page"):
        assert httpx.get(gw.url + path, headers={"Host": "evil.example"}).status_code == 403, path
    foreign = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "plain", "messages": HI},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    assert httpx.get(gw.url + "/page").headers.get("x-inner-middleware") == "1"
    assert "x-inner-middleware" not in httpx.get(gw.url + "/v1/models").headers


def test_real_app_serves_the_gateway(hub_cache: HubCache, tmp_path: Path) -> None:
    """As wired in create_app: a profile made over the API answers through the app's own /v1."""
    with running_app(tmp_path / "home", env={"HF_HUB_CACHE": str(hub_cache.cache_dir)}) as app:
        try:
            created = httpx.post(
                f"{app.url}/api/profiles", json={"name": "plain", "model": hub_cache.repos["plain"]}
            )
            assert created.status_code == 201, created.text
            client = openai.OpenAI(base_url=app.url + "/v1", api_key="unused", max_retries=0)
            stream = client.chat.completions.create(model="plain", messages=HI, stream=True, timeout=90)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == PLAIN_REPLY
            assert httpx.get(f"{app.url}/v1/models", headers={"Host": "evil.example"}).status_code == 403
            assert 'mlxui_server_up{profile="plain"} 1' in httpx.get(f"{app.url}/metrics").text
        finally:
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
