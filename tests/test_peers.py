"""Peers (issue 17, item 3): two real mlxui apps on loopback ports; the first lists the second's
models as `b/<model>` and forwards requests for them (plain, streamed, other dialects), sends the
second's gateway key, never forwards in a loop, and answers 503 with the reason within 2 s of the
second app stopping."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.harness import procguard
from tests.harness.app_process import AppProcess, app_env, free_port, start_app
from tests.harness.models import ENDLESS_CYCLE, PLAIN_REPLY

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]
B_KEY = "peer-b-key-123456"
PLAIN = "mlxui-test/scripted-plain"
ENDLESS = "mlxui-test/scripted-endless"
VIA_A = f"b/{PLAIN}"


def _start(home: Path, env: dict[str, str]) -> AppProcess:
    app = start_app(home, env=env)
    procguard.keep(app.pid)
    return app


def _stop(app: AppProcess) -> None:
    if app.process.poll() is None:
        with contextlib.suppress(httpx.TransportError):  # going away already: stop() still waits
            httpx.post(
                f"{app.url}/api/servers/stop-all", timeout=60, headers={"authorization": f"Bearer {B_KEY}"}
            )
    app.stop()
    procguard.release(app.pid)


@pytest.fixture(scope="module")
def apps(hub_cache, tmp_path_factory):
    """(a, b): b has the test models and a gateway key; a has no models and b as its peer "b"."""
    root = tmp_path_factory.mktemp("peers")
    b = _start(root / "b", {"HF_HUB_CACHE": str(hub_cache.cache_dir)})
    a = None
    try:
        httpx.put(f"{b.url}/api/settings", json={"gateway_key": B_KEY}, timeout=10).raise_for_status()
        a = _start(root / "a", {"HF_HUB_CACHE": str(root / "a-cache"), "MLXUI_OLLAMA_PORT": str(free_port())})
        added = httpx.post(f"{a.url}/api/peers", json={"url": b.url, "key": B_KEY, "name": "b"}, timeout=10)
        assert added.status_code == 201, added.text
        yield a, b
    finally:
        if a is not None:
            _stop(a)
        _stop(b)


def gateway(app: AppProcess) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{app.url}/v1", api_key="unused", http_client=httpx.Client(trust_env=False)
    )


def peer_view(app: AppProcess, name: str = "b") -> dict:
    return next(p for p in httpx.get(f"{app.url}/api/peers", timeout=5).json() if p["name"] == name)


def test_a_peer_model_is_listed_marked_and_answers_plain_and_streamed(apps) -> None:
    a, b = apps
    view = peer_view(a)
    assert view["up"] and view["key_set"] and "key" not in view, view
    assert VIA_A in view["models"]
    listed = {m.id: {**m.model_extra, "owned_by": m.owned_by} for m in gateway(a).models.list()}
    card = listed[VIA_A]
    assert (card["peer"], card["owned_by"], card["peer_model"], card["peer_state"]) == ("b", "b", PLAIN, "up")
    assert not any(i.startswith("b/b/") for i in listed), "no peer's peer models"
    assert httpx.get(f"{a.url}/v1/models/{VIA_A}", timeout=5).json()["peer"] == "b"

    reply = gateway(a).chat.completions.create(model=VIA_A, messages=HI)  # B starts it on demand
    assert (reply.choices[0].message.content, reply.model) == (PLAIN_REPLY, VIA_A)
    assert reply.usage is not None and reply.usage.completion_tokens > 0

    chunks = list(gateway(a).chat.completions.create(model=VIA_A, messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == PLAIN_REPLY
    assert len([c for c in chunks if c.choices]) > 3, "streamed in pieces, not one block"
    assert {c.model for c in chunks} == {VIA_A}, "chunks name the model as the client asked"
    assert not any(c.usage for c in chunks), "usage only when the client asks for it"
    with_usage = list(gateway(a).chat.completions.create(model=VIA_A, messages=HI, stream=True,
                                                         stream_options={"include_usage": True}))  # fmt: skip
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0


def test_other_dialects_reach_a_peer_model(apps) -> None:
    a, _ = apps
    answer = httpx.post(f"{a.url}/v1/messages", timeout=60,
                        json={"model": VIA_A, "max_tokens": 50, "messages": HI})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"][0]["text"] == PLAIN_REPLY


def test_the_ollama_api_lists_and_answers_a_peer_model(apps) -> None:
    a, _ = apps
    ollama = (
        f"http://127.0.0.1:{httpx.get(f'{a.url}/api/settings', timeout=5).json()['ollama_port_in_force']}"
    )
    names = [m["name"] for m in httpx.get(f"{ollama}/api/tags", timeout=5).json()["models"]]
    assert f"{VIA_A}:latest" in names, names
    body = {"model": f"{VIA_A}:latest", "messages": HI}
    whole = httpx.post(f"{ollama}/api/chat", json={**body, "stream": False}, timeout=60)
    assert whole.status_code == 200, whole.text
    assert (whole.json()["message"]["content"], whole.json()["model"]) == (PLAIN_REPLY, f"{VIA_A}:latest")
    lines = [
        json.loads(line) for line in httpx.post(f"{ollama}/api/chat", json=body, timeout=60).text.splitlines()
    ]
    assert "".join(line["message"]["content"] for line in lines) == PLAIN_REPLY and lines[-1]["done"]
    assert len(lines) > 3, "streamed line by line"


def test_errors_of_the_peer_reach_the_client_in_the_gateway_shape(apps) -> None:
    a, _ = apps
    with pytest.raises(openai.NotFoundError) as missing:
        gateway(a).chat.completions.create(model="b/no-such-model", messages=HI)
    assert "no-such-model" in str(missing.value)
    bad = httpx.post(
        f"{a.url}/v1/chat/completions", json={"model": VIA_A, "messages": HI, "n": 2}, timeout=30
    )
    assert bad.status_code == 400 and bad.json()["error"]["message"], bad.text


def test_a_client_that_leaves_closes_the_stream_on_the_peer(apps) -> None:
    """The endless model generates until max_tokens; a client of a that leaves after a few chunks
    must end b's relay too (b counts what it relayed): not 20,000 tokens later."""
    a, b = apps
    model = f"b/{ENDLESS}"
    first = gateway(a).chat.completions.create(model=model, messages=HI, max_tokens=4)  # loaded on b
    assert first.choices[0].message.content.startswith(ENDLESS_CYCLE[:2])

    def relayed_by_b() -> int:
        return httpx.get(f"{b.url}/api/servers/{ENDLESS}", timeout=5).json()["completion_tokens_total"]

    before = relayed_by_b()
    stream = gateway(a).chat.completions.create(model=model, messages=HI, stream=True, max_tokens=20000)
    for count, _chunk in enumerate(stream):
        if count == 5:
            break
    stream.close()
    time.sleep(2.0)
    settled = relayed_by_b() - before
    time.sleep(1.0)
    assert relayed_by_b() - before == settled, "b stopped relaying"
    print(f"b relayed {settled} tokens of the abandoned stream")
    assert 3 <= settled < 2000, settled  # the client read 6 chunks; b never went on to 20,000


def test_the_key_is_sent_and_a_refused_key_is_named(apps) -> None:
    a, b = apps
    assert httpx.get(f"{b.url}/v1/models", timeout=5).status_code == 401, "b really needs its key"
    httpx.delete(f"{a.url}/api/peers/b", timeout=5).raise_for_status()
    try:
        wrong = httpx.post(
            f"{a.url}/api/peers", json={"url": b.url, "key": "wrong-key-000", "name": "b"}, timeout=10
        )
        assert wrong.status_code == 201 and not wrong.json()["up"], wrong.text
        assert "refused the key" in wrong.json()["reason"]
        answer = httpx.post(f"{a.url}/v1/chat/completions", json={"model": VIA_A, "messages": HI}, timeout=10)
        assert answer.status_code == 503, answer.text
        message = answer.json()["error"]["message"]
        assert "'b'" in message and "refused the key" in message, message
    finally:
        httpx.delete(f"{a.url}/api/peers/b", timeout=5)
        httpx.post(f"{a.url}/api/peers", json={"url": b.url, "key": B_KEY, "name": "b"}, timeout=10)
    assert peer_view(a)["up"]


def test_addresses_are_checked(apps) -> None:
    a, _ = apps
    for url, says in (
        ("ftp://example.org", "http:// or https://"),
        ("http://user:secret@127.0.0.1:9", "no user or password"),
        ("http://127.0.0.1:9/?x=1", "no ?query"),
        ("127.0.0.1:9", "http:// or https://"),
    ):
        answer = httpx.post(f"{a.url}/api/peers", json={"url": url}, timeout=5)
        assert answer.status_code == 422 and says in answer.json()["error"]["message"], (url, answer.text)
    dup = httpx.post(f"{a.url}/api/peers", json={"url": peer_view(a)["url"] + "/v1/"}, timeout=5)
    assert dup.status_code == 422 and "already" in dup.json()["error"]["message"]


def test_peers_never_forward_in_a_loop(apps) -> None:
    a, b = apps
    auth = {"authorization": f"Bearer {B_KEY}"}
    added = httpx.post(f"{b.url}/api/peers", json={"url": a.url, "name": "a"}, timeout=10, headers=auth)
    assert added.status_code == 201 and added.json()["up"], added.text
    try:
        listed = [m["id"] for m in httpx.get(f"{b.url}/v1/models", headers=auth, timeout=5).json()["data"]]
        assert not any(i.startswith("a/") for i in listed), "a's models are all b's own: none listed back"
        started = time.monotonic()
        loop = httpx.post(f"{b.url}/v1/chat/completions", json={"model": f"a/{VIA_A}", "messages": HI},
                          headers=auth, timeout=10)  # fmt: skip
        assert loop.status_code == 404 and time.monotonic() - started < 5, loop.text
        forwarded = httpx.post(f"{a.url}/v1/chat/completions", json={"model": VIA_A, "messages": HI},
                               headers={"x-mlxui-forwarded": "1"}, timeout=10)  # fmt: skip
        assert forwarded.status_code == 404, "a forwarded request is never forwarded again"
        hidden = httpx.get(f"{a.url}/v1/models", headers={"x-mlxui-forwarded": "1"}, timeout=5).json()["data"]
        assert not any("peer" in m for m in hidden)
    finally:
        httpx.delete(f"{b.url}/api/peers/a", timeout=5, headers=auth)


def test_cli_lists_adds_and_removes_peers(apps, tmp_path) -> None:
    a, b = apps
    env = app_env(a.home, {"MLXUI_PORT": str(a.port)})

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mlxui", "peers", *args], env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0 and "b  " in listed.stdout and VIA_A in listed.stdout, listed
    assert B_KEY not in listed.stdout
    added = cli("add", "http://127.0.0.1:9", "--name", "gone")
    assert added.returncode == 0 and "gone" in added.stdout, added
    assert not peer_view(a, "gone")["up"]
    assert json.loads(cli("list", "--json").stdout)[1]["name"] == "gone"
    bad = cli("add", "ftp://x")
    assert bad.returncode == 2 and "http://" in bad.stderr, bad
    assert cli("remove", "gone").returncode == 0
    assert [p["name"] for p in httpx.get(f"{a.url}/api/peers", timeout=5).json()] == ["b"]


def test_stopping_the_peer_turns_its_models_to_503_within_2_s(apps) -> None:
    """Last in the module: it stops b."""
    a, b = apps
    assert (
        gateway(a).chat.completions.create(model=VIA_A, messages=HI).choices[0].message.content == PLAIN_REPLY
    )
    httpx.post(f"{b.url}/api/servers/stop-all", timeout=60, headers={"authorization": f"Bearer {B_KEY}"})
    b.process.kill()  # by pid: no goodbye
    stopped = time.monotonic()
    b.process.wait(10)
    while peer_view(a)["up"] and time.monotonic() - stopped < 2.0:  # the refresher alone notices
        time.sleep(0.05)
    noticed = time.monotonic() - stopped
    assert not peer_view(a)["up"], "shown down within 2 s, before any request tried it"
    answer = None
    while time.monotonic() - stopped < 2.0:
        answer = httpx.post(f"{a.url}/v1/chat/completions", json={"model": VIA_A, "messages": HI}, timeout=5)
        if answer.status_code == 503:
            break
        time.sleep(0.05)
    took = time.monotonic() - stopped
    assert answer is not None and answer.status_code == 503, (took, answer and answer.text)
    message = answer.json()["error"]["message"]
    assert "'b'" in message and "down" in message and b.url in message, message
    print(f"shown down after {noticed:.2f} s, 503 after {took:.2f} s")
    view = peer_view(a)
    assert not view["up"] and view["reason"]
    card = next(m for m in httpx.get(f"{a.url}/v1/models", timeout=5).json()["data"] if m["id"] == VIA_A)
    assert (card["state"], card["peer_state"]) == ("down", "down")
