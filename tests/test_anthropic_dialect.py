"""Anthropic Messages on the gateway, called with the official `anthropic` client against real
model servers run by the real Supervisor (the `GatewayApp` of tests/test_gateway.py)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator

import anthropic
import httpx
import httpx2
import pytest
from PIL import Image

from mlxui.config import Config
from tests.harness.fixtures_models import HubCache
from tests.harness.models import PLAIN_REPLY, PLAIN_TOKENS, THINK_CONTENT, THINK_REASONING
from tests.harness.tool_models import TOOL_ANSWER, TOOL_ARGUMENTS, TOOL_NAME
from tests.test_gateway import GatewayApp

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]
JSON = {"content-type": "application/json"}
WEATHER = {
    "name": TOOL_NAME,
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def gw(hub_cache: HubCache, tool_model_dir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayApp]:
    profiles = [
        {"name": "plain", "model": hub_cache.repos["plain"]},
        {"name": "think", "model": hub_cache.repos["think_tokens"]},
        {"name": "endless", "model": hub_cache.repos["endless"]},
        {"name": "vision", "model": hub_cache.repos["vlm"]},
        {"name": "tools", "model": str(tool_model_dir)},
    ]
    home = tmp_path_factory.mktemp("anthropic-home")
    with GatewayApp(Config(home=home, hf_cache=hub_cache.cache_dir), profiles) as app:
        yield app


def client(gw: GatewayApp, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("api_key", "unused")
    return anthropic.Anthropic(
        base_url=gw.url, max_retries=0, http_client=httpx2.Client(trust_env=False, timeout=60), **kwargs
    )


def sse_events(gw: GatewayApp, body: dict) -> list[dict]:
    events = []
    with httpx.Client(trust_env=False, timeout=60) as http:
        with http.stream("POST", f"{gw.url}/v1/messages", json={**body, "stream": True}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    assert event["type"] == name
                    events.append(event)
    return events


def test_plain_and_streamed_messages_get_the_scripted_reply(gw: GatewayApp) -> None:
    whole = client(gw).messages.create(model="plain", max_tokens=50, messages=HI)
    assert whole.id.startswith("msg_") and whole.model == "plain" and whole.role == "assistant"
    assert [(b.type, b.text) for b in whole.content] == [("text", PLAIN_REPLY)]
    assert (whole.stop_reason, whole.stop_sequence) == ("end_turn", None)
    assert whole.usage.output_tokens == len(PLAIN_TOKENS) + 1 and whole.usage.input_tokens > 0

    with client(gw).messages.stream(model="plain", max_tokens=50, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == PLAIN_REPLY and final.content[0].text == PLAIN_REPLY
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == whole.usage.output_tokens

    events = sse_events(gw, {"model": "plain", "max_tokens": 50, "messages": HI})
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    assert {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"} == {"text_delta"}
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"]["output_tokens"] == whole.usage.output_tokens


def test_a_thinking_model_answers_a_thinking_block_then_text(gw: GatewayApp) -> None:
    whole = client(gw).messages.create(model="think", max_tokens=50, messages=HI)
    assert [b.type for b in whole.content] == ["thinking", "text"]
    assert whole.content[0].thinking == THINK_REASONING and whole.content[1].text == THINK_CONTENT
    events = sse_events(gw, {"model": "think", "max_tokens": 50, "messages": HI})
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text"]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == THINK_REASONING
    assert "".join(d.get("text", "") for d in deltas) == THINK_CONTENT


def test_the_system_prompt_reaches_the_model_and_count_tokens_agrees(gw: GatewayApp) -> None:
    api = client(gw)
    bare = api.messages.create(model="plain", max_tokens=50, messages=HI).usage.input_tokens
    system = "hello how are you"  # <|system|> + 4 words + <|end|>: 6 tokens
    as_text = api.messages.create(model="plain", max_tokens=50, system=system, messages=HI)
    as_blocks = api.messages.create(
        model="plain", max_tokens=50, messages=HI,
        system=[{"type": "text", "text": "hello how"}, {"type": "text", "text": " are you"}],
    )  # fmt: skip
    assert as_text.usage.input_tokens == as_blocks.usage.input_tokens == bare + 6
    assert as_text.content[0].text == PLAIN_REPLY
    counted = api.messages.count_tokens(model="plain", system=system, messages=HI)
    assert counted.input_tokens == as_text.usage.input_tokens


def test_stop_sequences_and_max_tokens_end_the_answer(gw: GatewayApp) -> None:
    api = client(gw)
    cut = api.messages.create(model="plain", max_tokens=50, messages=HI, stop_sequences=["nope", " How"])
    assert cut.content[0].text == "Hello there!"
    assert (cut.stop_reason, cut.stop_sequence) == ("stop_sequence", " How")
    with api.messages.stream(model="plain", max_tokens=50, messages=HI, stop_sequences=["re!"]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello the" and (final.stop_reason, final.stop_sequence) == ("stop_sequence", "re!")
    short = api.messages.create(model="plain", max_tokens=2, messages=HI)
    assert short.content[0].text == "Hello there" and short.stop_reason == "max_tokens"


def test_an_image_reaches_the_vision_model(gw: GatewayApp) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (56, 56), (200, 30, 30)).save(picture, format="PNG")
    image = {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(picture.getvalue()).decode(),
    }
    text = {"type": "text", "text": "What is in the picture?"}
    api = client(gw)
    plain = api.messages.create(model="vision", max_tokens=4, messages=[{"role": "user", "content": [text]}])
    seen = api.messages.create(
        model="vision", max_tokens=4,
        messages=[{"role": "user", "content": [{"type": "image", "source": image}, text]}],
    )  # fmt: skip
    assert seen.content and seen.content[0].type == "text" and seen.usage.output_tokens >= 1
    assert seen.usage.input_tokens > plain.usage.input_tokens + 2  # the picture became image tokens


def test_a_full_tool_round_trip(gw: GatewayApp) -> None:
    api = client(gw)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = api.messages.create(model="tools", max_tokens=50, tools=[WEATHER], messages=ask)
    assert first.stop_reason == "tool_use"
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert (use.name, use.input) == (TOOL_NAME, TOOL_ARGUMENTS) and use.id
    result = {
        "type": "tool_result",
        "tool_use_id": use.id,
        "content": [{"type": "text", "text": "sunny, 24 C"}],
    }
    conversation = [
        *ask,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result]},
    ]
    answer = api.messages.create(model="tools", max_tokens=50, tools=[WEATHER], messages=conversation)
    assert [(b.type, b.text) for b in answer.content] == [("text", TOOL_ANSWER)]
    assert answer.stop_reason == "end_turn"
    counted = api.messages.count_tokens(model="tools", tools=[WEATHER], messages=conversation)
    assert counted.input_tokens == answer.usage.input_tokens

    with api.messages.stream(model="tools", max_tokens=50, tools=[WEATHER], messages=ask) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        final = stream.get_final_message()
    assert ("content_block_delta", "input_json_delta") in kinds
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", TOOL_NAME, TOOL_ARGUMENTS)]
    # tool_choice "none" sends no tools: the template renders none, so the prompt is shorter
    unarmed = api.messages.count_tokens(
        model="tools", tools=[WEATHER], tool_choice={"type": "none"}, messages=ask
    )
    armed = api.messages.count_tokens(model="tools", tools=[WEATHER], messages=ask)
    assert unarmed.input_tokens < armed.input_tokens


def test_errors_come_in_anthropics_shape(gw: GatewayApp) -> None:
    api = client(gw)
    with pytest.raises(anthropic.NotFoundError) as unknown:
        api.messages.create(model="plian", max_tokens=5, messages=HI)
    assert unknown.value.body["type"] == "error"
    assert unknown.value.body["error"]["type"] == "not_found_error"
    assert "'plain'" in unknown.value.body["error"]["message"]  # the close match
    with pytest.raises(anthropic.BadRequestError) as no_max:
        api.messages.create(model="plain", max_tokens=0, messages=HI)
    assert no_max.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in no_max.value.body["error"]["message"]
    bad_blocks = {
        "model": "plain",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [{"type": "video"}]}],
    }
    with httpx.Client(trust_env=False, timeout=30) as http:
        errors = {}
        for body in (b"{not json", json.dumps(bad_blocks).encode(), b"[]"):
            response = http.post(f"{gw.url}/v1/messages", content=body, headers=JSON)
            assert response.status_code == 400, body
            assert response.json()["type"] == "error"
            assert response.json()["error"]["type"] == "invalid_request_error"
            errors[body] = response.json()["error"]["message"]
        assert http.get(f"{gw.url}/v1/messages").status_code == 405
    assert "'video'" in errors[json.dumps(bad_blocks).encode()]
    assert "not valid JSON" in errors[b"{not json"]


def test_the_gateway_key_is_taken_as_x_api_key_or_bearer(gw: GatewayApp) -> None:
    gw.api_key = "sekret"
    try:
        assert client(gw, api_key="sekret").messages.create(model="plain", max_tokens=50, messages=HI).content
        bearer = anthropic.Anthropic(
            base_url=gw.url, auth_token="sekret", max_retries=0, http_client=httpx2.Client(trust_env=False)
        )
        assert bearer.messages.count_tokens(model="plain", messages=HI).input_tokens > 0
        with pytest.raises(anthropic.AuthenticationError) as wrong:
            client(gw, api_key="wrong").messages.create(model="plain", max_tokens=5, messages=HI)
        assert wrong.value.body["error"]["type"] == "authentication_error"
        # x-api-key is Anthropic's header: the OpenAI routes still want Authorization: Bearer
        models = httpx.get(f"{gw.url}/v1/models", headers={"x-api-key": "sekret"}, trust_env=False)
        assert models.status_code == 401
    finally:
        gw.api_key = None


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_frees_the_model(gw: GatewayApp, stream: bool) -> None:
    body = {"model": "endless", "max_tokens": 100_000, "messages": HI, "stream": stream}
    client(gw).messages.create(model="endless", max_tokens=2, messages=HI)  # started, ready
    server = gw.supervisor.servers["endless"]
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(60, read=1.5)) as http:
        if stream:
            with http.stream("POST", f"{gw.url}/v1/messages", json=body) as response:
                for line in response.iter_lines():
                    if "text_delta" in line:
                        break  # it is generating; leave
        else:
            with pytest.raises(httpx.ReadTimeout):
                http.post(f"{gw.url}/v1/messages", json=body)
    deadline = time.monotonic() + 1.0
    while server.active_requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.active_requests == 0
    started = time.monotonic()
    assert client(gw).messages.create(model="endless", max_tokens=2, messages=HI).content
    assert time.monotonic() - started < 2.0  # the server is free, not still generating
