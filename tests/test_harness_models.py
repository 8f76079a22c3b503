"""Proof that the built test models and the server harness behave as the rest of the suite assumes."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import psutil
import pytest
from huggingface_hub import scan_cache_dir, snapshot_download
from PIL import Image

from tests.harness import models
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.harness.mlxserver import RunningServer, ServerKind, ServerStartError, start_server

pytestmark = pytest.mark.slow

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the meaning of life?"},
    {"role": "assistant", "content": "Unclear."},
    {"role": "user", "content": [{"type": "text", "text": "Try again, please."}]},
]


def chat(server: RunningServer, messages: list[dict], **params: object) -> dict:
    body = {"model": server.model, "messages": messages, **params}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def stream_deltas(server: RunningServer, messages: list[dict], **params: object) -> tuple[list[dict], str]:
    """The `delta` objects of an SSE chat stream, and the last finish_reason."""
    body = {"model": server.model, "messages": messages, "stream": True, **params}
    deltas: list[dict] = []
    finish_reason = ""
    url = f"{server.base_url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue  # blank separators and ": keepalive" comments
            for choice in json.loads(line[len("data: ") :])["choices"]:
                deltas.append(choice["delta"])
                finish_reason = choice["finish_reason"] or finish_reason
    return deltas, finish_reason


def joined(deltas: list[dict], key: str) -> str:
    return "".join(delta.get(key) or "" for delta in deltas)


def test_plain_model_streams_its_exact_reply(plain_server: RunningServer) -> None:
    deltas, finish_reason = stream_deltas(plain_server, CONVERSATION)
    assert joined(deltas, "content") == models.PLAIN_REPLY
    assert len([d for d in deltas if d.get("content")]) > 1  # really streamed, token by token
    assert joined(deltas, "reasoning") == ""
    assert finish_reason == "stop"


def test_plain_model_answers_exactly_without_streaming(plain_server: RunningServer) -> None:
    reply = chat(plain_server, [{"role": "user", "content": "hello"}], temperature=1.0)
    assert reply["choices"][0]["message"]["content"] == models.PLAIN_REPLY
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"]["completion_tokens"] == len(models.PLAIN_TOKENS) + 1  # + EOS


def test_plain_model_ignores_tools_and_thinking_switches(plain_server: RunningServer) -> None:
    tools = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}]
    reply = chat(plain_server, CONVERSATION, tools=tools, chat_template_kwargs={"enable_thinking": False})
    assert reply["choices"][0]["message"]["content"] == models.PLAIN_REPLY


def test_think_token_model_splits_reasoning_from_content(think_tokens_server: RunningServer) -> None:
    deltas, finish_reason = stream_deltas(think_tokens_server, CONVERSATION)
    assert joined(deltas, "reasoning") == models.THINK_REASONING
    assert joined(deltas, "content") == models.THINK_CONTENT
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all(not d.get("content") for d in deltas[:first_content])
    assert all(not d.get("reasoning") for d in deltas[first_content:])  # reasoning comes first
    assert finish_reason == "stop"


def test_think_text_model_keeps_tags_in_content(think_text_server: RunningServer) -> None:
    deltas, _ = stream_deltas(think_text_server, CONVERSATION)
    assert joined(deltas, "content") == models.THINK_TEXT_REPLY
    assert joined(deltas, "reasoning") == ""


def test_endless_model_stops_at_max_tokens(endless_server: RunningServer) -> None:
    reply = chat(endless_server, CONVERSATION, max_tokens=20)
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 20
    text = reply["choices"][0]["message"]["content"]
    assert (models.ENDLESS_CYCLE * 10).startswith(text)
    assert text.count(models.ENDLESS_CYCLE.strip()) >= 6


def test_tiny_llama_serves_a_streamed_chat(tiny_llama_server: RunningServer) -> None:
    deltas, finish_reason = stream_deltas(
        tiny_llama_server, CONVERSATION, max_tokens=16, stream_options={"include_usage": True}
    )
    assert joined(deltas, "content").strip()
    assert finish_reason in {"stop", "length"}


def test_tiny_vlm_answers_a_chat_with_an_image(vlm_server: RunningServer) -> None:
    health = httpx.get(f"{vlm_server.base_url}/health", timeout=10)
    assert health.status_code == 200
    text_only = [{"role": "user", "content": "What is in the picture?"}]
    with_image = [{"role": "user", "content": [*_text_part("What is in the picture?"), _png_part()]}]
    plain = chat(vlm_server, text_only, max_tokens=4)
    seen = chat(vlm_server, with_image, max_tokens=4)
    assert isinstance(seen["choices"][0]["message"]["content"], str)
    assert seen["usage"]["completion_tokens"] >= 1
    # The picture became image tokens in the prompt: it reached the vision tower.
    assert seen["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 2


def test_vlm_server_requires_model_in_request(vlm_server: RunningServer) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    response = httpx.post(f"{vlm_server.base_url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 422


def test_builds_are_deterministic(model_dirs: ModelDirs, tmp_path: Path) -> None:
    rebuilt = {
        "plain": models.build_scripted_plain(tmp_path / "plain"),
        "tiny_llama": models.build_tiny_llama(tmp_path / "tiny_llama"),
        "vlm": models.build_tiny_vlm(tmp_path / "vlm"),
    }
    for name, folder in rebuilt.items():
        original = getattr(model_dirs, name)
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in original.iterdir())
        for path in folder.iterdir():
            assert path.read_bytes() == (original / path.name).read_bytes(), f"{name}/{path.name}"


def test_hf_cache_repo_is_found_by_huggingface_hub(hub_cache: HubCache, model_dirs: ModelDirs) -> None:
    info = scan_cache_dir(hub_cache.cache_dir)
    assert info.warnings == []
    found = {repo.repo_id: repo for repo in info.repos}
    assert set(found) == set(hub_cache.repos.values())
    for name, repo_id in hub_cache.repos.items():
        source = getattr(model_dirs, name)
        expected_size = sum(p.stat().st_size for p in source.iterdir())
        assert found[repo_id].size_on_disk == expected_size
        (revision,) = found[repo_id].revisions
        assert revision.refs == frozenset({"main"})
        assert {f.file_name for f in revision.files} == {p.name for p in source.iterdir()}
        path = snapshot_download(repo_id, cache_dir=hub_cache.cache_dir, local_files_only=True)
        assert Path(path) == hub_cache.snapshots[name]
        assert (Path(path) / "config.json").read_bytes() == (source / "config.json").read_bytes()


def test_hf_cache_blob_names_follow_the_hub(hub_cache: HubCache) -> None:
    snapshot = hub_cache.snapshots["plain"]
    weights = (snapshot / "model.safetensors").resolve()
    config = (snapshot / "config.json").resolve()
    assert len(weights.name) == 64  # sha256, as the Hub's ETag for LFS files
    assert len(config.name) == 40  # git blob sha1 for small files
    assert not Path((snapshot / "config.json").readlink()).is_absolute()


def test_server_by_repo_id_from_hf_cache_and_stop_leaves_no_process(
    hub_cache: HubCache, tmp_path: Path
) -> None:
    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir)}
    with start_server(hub_cache.repos["plain"], env=env, log_dir=tmp_path) as server:
        reply = chat(server, [{"role": "user", "content": "hi"}])
        assert reply["choices"][0]["message"]["content"] == models.PLAIN_REPLY
        process = psutil.Process(server.pid)
        family = [process, *process.children(recursive=True)]
        assert process.is_running()
    assert server.process.returncode is not None
    assert server.stop() == server.process.returncode  # a second stop is harmless
    assert not [p.pid for p in family if _alive(p)]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base_url}/health", timeout=2)


@pytest.mark.parametrize("kind", ["lm", "vlm"])
def test_start_server_reports_a_model_that_cannot_load(kind: ServerKind, tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(ServerStartError, match="config") as failure:
        start_server(empty, kind, timeout=30, log_dir=tmp_path)
    assert "not-a-model" in str(failure.value)  # the log tail names what went wrong
    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if str(empty) in (p.info["cmdline"] or [])]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _text_part(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


def _png_part() -> dict:
    image = Image.new("RGB", (48, 40), (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, 24, 20))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}
