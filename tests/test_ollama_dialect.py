"""The Ollama API on its own listener (issue 15, item 3), with the official `ollama` client against
the app as a real process: models, chat and generate (plain and streamed) with the scripted model's
exact reply, pull from the fake Hub then chat, delete, errors as JSON, and a port already taken."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from PIL import Image

from tests.harness import procguard
from tests.harness.app_process import AppProcess, free_port, running_app
from tests.harness.fixtures_hub import HubEnv
from tests.harness.fixtures_models import HubCache
from tests.harness.models import PLAIN_REPLY, THINK_CONTENT, THINK_REASONING, build_scripted_plain
from tests.test_cli_models import cli_env, serve

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]
PLAIN = "scripted-plain:latest"  # the short name, with Ollama's tag
LISTED = "mlxui-test/scripted-plain:latest"  # lists name a cached model by its repo id


def client(port: int) -> ollama.Client:
    return ollama.Client(host=f"http://127.0.0.1:{port}", trust_env=False)


def ollama_status(app: AppProcess, timeout: float = 10.0) -> dict:
    """The app's word on its Ollama listener, once it has tried to start it (just after /healthz)."""
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{app.url}/api/status", timeout=5).json()["ollama"]
        if status["listening"] or "taken" in status["note"] or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


@pytest.fixture(scope="module")
def app(hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    port = free_port()
    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir), "MLXUI_OLLAMA_PORT": str(port)}
    with running_app(tmp_path_factory.mktemp("ollama-home"), env=env) as app:
        procguard.keep(app.pid)
        app.ollama_port = port  # type: ignore[attr-defined]
        ollama_status(app)
        try:
            yield app
        finally:
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
            procguard.release(app.pid)


def test_version_tags_show_and_the_openai_routes_on_the_ollama_port(app: AppProcess) -> None:
    port = app.ollama_port  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base, timeout=5).text == "Ollama is running"
    assert httpx.get(f"{base}/api/version", timeout=5).json()["version"]
    listed = {m.model: m for m in client(port).list().models}
    assert {LISTED, "mlxui-test/tiny-qwen2-vl:latest"} <= set(listed), sorted(listed)
    plain = listed[LISTED]
    assert plain.size and plain.size > 0 and len(plain.digest or "") == 64 and plain.modified_at
    assert plain.details.format == "mlx" and plain.details.family == "llama"
    assert plain.details.parameter_size and plain.details.quantization_level is not None

    shown = client(port).show(PLAIN)
    assert "completion" in shown.capabilities and shown.details.format == "mlx"
    assert shown.modelinfo["general.architecture"] == "llama" and shown.template
    assert "vision" in client(port).show("mlxui-test/tiny-qwen2-vl").capabilities

    models = httpx.get(f"{base}/v1/models", timeout=10).json()["data"]
    assert "mlxui-test/scripted-plain" in {m["id"] for m in models}
    status = ollama_status(app)
    assert status["listening"] and status["url"] == base and status["source"] == "from MLXUI_OLLAMA_PORT"


def test_chat_and_generate_plain_and_streamed_get_the_exact_reply(app: AppProcess) -> None:
    ol = client(app.ollama_port)  # type: ignore[attr-defined]
    reply = ol.chat(model=PLAIN, messages=HI, options={"temperature": 0, "num_predict": 64})
    assert reply.message.content == PLAIN_REPLY and reply.done and reply.done_reason == "stop"
    assert reply.model == PLAIN and reply.eval_count and reply.prompt_eval_count
    assert reply.total_duration and reply.total_duration >= (reply.load_duration or 0)

    parts = list(ol.chat(model=PLAIN, messages=HI, stream=True))
    assert "".join(p.message.content or "" for p in parts) == PLAIN_REPLY
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done and parts[-1].eval_count
    assert len(parts) > 2, "streamed in pieces"

    generated = ol.generate(model="scripted-plain", prompt="hi", keep_alive="10m")
    assert generated.response == PLAIN_REPLY and generated.done
    pieces = list(ol.generate(model=PLAIN, prompt="hi", stream=True))
    assert "".join(p.response or "" for p in pieces) == PLAIN_REPLY and pieces[-1].done

    running = {m.model: m for m in ol.ps().models}
    assert LISTED in running and running[LISTED].size and running[LISTED].expires_at
    assert running[LISTED].expires_at.year < 2300, "keep_alive 10m reached the server"


def test_thinking_and_images_reach_the_model(app: AppProcess) -> None:
    """`think` gives the model's reasoning in `thinking`; `images` go to a vision model."""
    ol = client(app.ollama_port)  # type: ignore[attr-defined]
    thought = ol.chat(model="scripted-think-tokens", messages=HI, think=True)
    assert (thought.message.thinking, thought.message.content) == (THINK_REASONING, THINK_CONTENT)
    streamed = list(ol.chat(model="scripted-think-tokens", messages=HI, think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in streamed) == THINK_REASONING
    assert "".join(p.message.content or "" for p in streamed) == THINK_CONTENT
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    question = {"role": "user", "content": "What colour is this?"}
    plain = ol.chat(model="tiny-qwen2-vl", messages=[question], options={"num_predict": 4})
    looked = ol.chat(
        model="tiny-qwen2-vl",
        messages=[{**question, "images": [buffer.getvalue()]}],
        options={"num_predict": 4},
    )  # the tiny vision model's weights are random: any answer, but one that read the image
    assert looked.done and looked.eval_count
    assert looked.prompt_eval_count > plain.prompt_eval_count, "the image reached the model as tokens"
    httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)


def test_refusals_are_json_errors_that_say_what_to_do(app: AppProcess) -> None:
    port = app.ollama_port  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(ollama.ResponseError) as unknown:
        client(port).chat(model="scripted-plian", messages=HI)
    assert unknown.value.status_code == 404 and "'scripted-plain:latest'" in unknown.value.error
    with pytest.raises(ollama.ResponseError) as tag:
        client(port).show("scripted-plain:q4")
    assert tag.value.status_code == 404 and "scripted-plain:latest" in tag.value.error
    with pytest.raises(ollama.ResponseError) as fmt:
        client(port).chat(model=PLAIN, messages=HI, format="json")
    assert fmt.value.status_code == 400 and "`format`" in fmt.value.error
    with pytest.raises(ollama.ResponseError) as images:
        client(port).chat(model=PLAIN, messages=[{**HI[0], "images": ["iVBORw0KGgo="]}])
    assert images.value.status_code == 400 and "cannot read images" in images.value.error
    embed = httpx.post(f"{base}/api/embed", json={"model": PLAIN, "input": "hi"}, timeout=5)
    assert embed.status_code == 501 and "embeddings" in embed.json()["error"]
    missing = httpx.get(f"{base}/api/nope", timeout=5)
    assert missing.status_code == 404 and missing.json() == {"error": "no such endpoint: GET /api/nope"}
    foreign = httpx.get(f"{base}/api/tags", headers={"Origin": "http://evil.example"}, timeout=5)
    assert foreign.status_code == 403, "the Host/Origin guard covers this listener too"
    local_page = "http://localhost:5173"  # a browser-based Ollama client served on this machine
    preflight = httpx.options(f"{base}/api/chat", timeout=5, headers={
        "Origin": local_page, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})  # fmt: skip
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == local_page
    listed = httpx.get(f"{base}/api/tags", headers={"Origin": local_page}, timeout=5)
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == local_page


def test_pull_from_the_hub_then_chat_then_delete(hf_env: HubEnv, tmp_path: Path) -> None:
    repo_id = serve(hf_env.hub, build_scripted_plain(tmp_path / "pulled"))
    port = free_port()
    env = cli_env(hf_env, tmp_path / "home", cache_dir=tmp_path / "cache") | {"MLXUI_OLLAMA_PORT": str(port)}
    with running_app(tmp_path / "home", env=env) as app:
        ollama_status(app)
        try:
            lines = list(client(port).pull(f"{repo_id}:latest", stream=True))
            assert lines[0].status == "pulling manifest" and lines[-1].status == "success"
            progress = [p for p in lines if p.digest]
            assert progress and progress[-1].completed == progress[-1].total > 0
            downloads = httpx.get(f"{app.url}/api/downloads", timeout=5).json()
            assert [d["state"] for d in downloads if d["repo_id"] == repo_id] == ["done"], "mlxui's download"

            reply = client(port).chat(model=f"{repo_id}:latest", messages=HI)
            assert reply.message.content == PLAIN_REPLY
            with pytest.raises(ollama.ResponseError) as busy:
                client(port).delete(repo_id)
            assert busy.value.status_code == 409 and "stop the server first" in busy.value.error
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
            assert client(port).delete(f"{repo_id}:latest").status == "success"
            assert f"{repo_id}:latest" not in {m.model for m in client(port).list().models}
            with pytest.raises(ollama.ResponseError) as gone:
                client(port).delete(repo_id)
            assert gone.value.status_code == 404
        finally:
            httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)


def test_a_taken_port_leaves_the_app_running_and_says_so(hub_cache: HubCache, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"HF_HUB_CACHE": str(hub_cache.cache_dir), "MLXUI_OLLAMA_PORT": str(port)}
        with running_app(tmp_path / "home", env=env) as app:
            status = ollama_status(app)
            assert status["listening"] is False and f"port {port} is taken" in status["note"]
            assert "MLXUI_OLLAMA_PORT" in status["note"]
            settings = httpx.get(f"{app.url}/api/settings", timeout=5).json()
            assert settings["ollama_port_in_force"] == port and "taken" in settings["ollama_note"]
            assert f"port {port} is taken" in app.log_tail(200)
            assert httpx.get(f"{app.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert json.dumps(status)  # plain JSON
