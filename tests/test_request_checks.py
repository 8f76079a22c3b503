"""Nothing silently dropped (issue 15, items 4 and 5), through each dialect's official client against
real model servers run by the real Supervisor: tools for a model that cannot call them, `n > 1`,
`response_format`, a prompt longer than the context and an empty conversation are 400s before any
server sees them; the scripted tool model does a full tool round trip in OpenAI chat, Responses and
Ollama; a plain OpenAI answer is assembled from a stream, so a client that leaves frees the model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import httpx2
import ollama
import openai
import pytest

from mlxui.config import Config
from mlxui.servers.dialects.ollama import OllamaApi
from mlxui.servers.gateway import Gateway
from mlxui.servers.relay import ASGIApp, Receive, Scope, Send
from tests.harness.fixtures_models import HubCache
from tests.harness.models import PLAIN_REPLY, THINK_CONTENT, THINK_REASONING
from tests.harness.tool_models import TOOL_ANSWER, TOOL_ARGUMENTS, TOOL_NAME, WEATHER_TOOL
from tests.test_gateway import GatewayApp

pytestmark = pytest.mark.slow
HI = [{"role": "user", "content": "hi"}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
LONG = "hi " * 5000  # 5,000 words: over the scripted models' 4,096-token context
RESPONSES_TOOL = {"type": "function", "name": TOOL_NAME, "parameters": WEATHER_TOOL["function"]["parameters"]}


class _OllamaPaths:
    """`/api/*` to the Ollama API, the rest to the gateway app: both on the app's one event loop."""

    def __init__(self, app: ASGIApp, ollama_api: OllamaApi) -> None:
        self.app, self.ollama_api = app, ollama_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            await self.ollama_api(scope, receive, send)
        else:
            await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def gw(
    hub_cache: HubCache, tool_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayApp]:
    profiles = [
        {"name": "plain", "model": hub_cache.repos["plain"]},
        {"name": "think", "model": hub_cache.repos["think_tokens"]},
        {"name": "endless", "model": hub_cache.repos["endless"]},
        {"name": "tools", "model": str(tool_model_dir)},
    ]
    app = GatewayApp(
        Config(home=tmp_path_factory.mktemp("checks-home"), hf_cache=hub_cache.cache_dir), profiles
    )
    ollama_api = OllamaApi(Gateway(app.supervisor), None, hub_cache.cache_dir)  # type: ignore[arg-type]
    app.server.config.app = _OllamaPaths(app.server.config.app, ollama_api)
    with app:
        yield app


def claude(gw: GatewayApp) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0,
                               http_client=httpx2.Client(trust_env=False, timeout=60))  # fmt: skip


def llama(gw: GatewayApp) -> ollama.Client:
    return ollama.Client(host=gw.url, trust_env=False, timeout=60)


def started(gw: GatewayApp) -> set[str]:
    return set(gw.starts)


def test_tools_for_a_model_that_cannot_call_them_are_refused_in_every_dialect(gw: GatewayApp) -> None:
    before = started(gw)
    with pytest.raises(openai.BadRequestError) as chat:
        gw.client().chat.completions.create(model="plain", messages=HI, tools=[WEATHER_TOOL])
    assert chat.value.code == "tools_unsupported" and "'plain' cannot call tools" in chat.value.message
    with pytest.raises(openai.BadRequestError) as responses:
        gw.client().responses.create(model="plain", input="hi", tools=[RESPONSES_TOOL])
    assert responses.value.code == "tools_unsupported"
    tool = {"name": TOOL_NAME, "input_schema": WEATHER_TOOL["function"]["parameters"]}
    with pytest.raises(anthropic.BadRequestError) as messages:
        claude(gw).messages.create(model="plain", max_tokens=5, messages=HI, tools=[tool])
    assert "cannot call tools" in messages.value.body["error"]["message"]
    with pytest.raises(ollama.ResponseError) as native:
        llama(gw).chat(model="plain", messages=HI, tools=[WEATHER_TOOL])
    assert native.value.status_code == 400 and "cannot call tools" in native.value.error
    assert started(gw) == before  # refused before any model was started


def test_n_response_format_and_an_empty_conversation_are_400s(gw: GatewayApp) -> None:
    client = gw.client()
    with pytest.raises(openai.BadRequestError) as n:
        client.chat.completions.create(model="plain", messages=HI, n=2)
    assert "`n`" in n.value.message
    with pytest.raises(openai.BadRequestError) as n_text:
        client.completions.create(model="plain", prompt="hi", n=3)
    assert "`n`" in n_text.value.message
    for response_format in (
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    ):
        with pytest.raises(openai.BadRequestError) as fmt:
            client.chat.completions.create(model="plain", messages=HI, response_format=response_format)
        assert "`response_format`" in fmt.value.message and response_format["type"] in fmt.value.message
    text = client.chat.completions.create(model="plain", messages=HI, response_format={"type": "text"})
    assert text.choices[0].message.content == PLAIN_REPLY  # plain text is what it does anyway
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="plain", messages=[])
    assert empty.value.status_code == 400 and empty.value.code == "messages_required"
    with pytest.raises(openai.BadRequestError) as empty_input:
        client.responses.create(model="plain", input=[])
    assert empty_input.value.code == "input_required"  # the Responses translation's own word
    with pytest.raises(ollama.ResponseError) as fmt_native:
        llama(gw).chat(model="plain", messages=HI, format="json")
    assert fmt_native.value.status_code == 400 and "`format`" in fmt_native.value.error


def test_a_prompt_longer_than_the_context_is_refused_with_both_numbers(gw: GatewayApp) -> None:
    gw.supervisor.servers["endless"]  # exists; must not be started by any of these
    before = started(gw)
    long_chat = [{"role": "user", "content": LONG}]
    with pytest.raises(openai.BadRequestError) as chat:
        gw.client().chat.completions.create(model="endless", messages=long_chat)
    assert chat.value.code == "context_length_exceeded"
    assert "5,00" in chat.value.message and "4,096" in chat.value.message, chat.value.message
    with pytest.raises(openai.BadRequestError) as text:
        gw.client().completions.create(model="endless", prompt=LONG)
    assert text.value.code == "context_length_exceeded" and "4,096" in text.value.message
    with pytest.raises(openai.BadRequestError) as responses:
        gw.client().responses.create(model="endless", input=LONG)
    assert responses.value.code == "context_length_exceeded"
    with pytest.raises(anthropic.BadRequestError) as messages:
        claude(gw).messages.create(model="endless", max_tokens=5, messages=long_chat)
    assert "4,096" in messages.value.body["error"]["message"]
    with pytest.raises(ollama.ResponseError) as native:
        llama(gw).generate(model="endless", prompt=LONG)
    assert native.value.status_code == 400 and "4,096" in native.value.error
    assert started(gw) == before  # counted with the tokenizer: no server saw the prompt


def test_openai_chat_tool_round_trip_plain_and_streamed(gw: GatewayApp) -> None:
    client = gw.client()
    first = client.chat.completions.create(model="tools", messages=ASK, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    [call] = choice.message.tool_calls
    assert (call.type, call.function.name, json.loads(call.function.arguments)) == (
        "function", TOOL_NAME, TOOL_ARGUMENTS)  # fmt: skip
    assert call.id and first.model == "tools" and first.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(model="tools", messages=ASK, tools=[WEATHER_TOOL], stream=True)
    )
    streamed = [c for chunk in chunks for c in (chunk.choices[0].delta.tool_calls or []) if chunk.choices]
    assert [c.function.name for c in streamed] == [TOOL_NAME]
    conversation = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"},
    ]
    answer = client.chat.completions.create(model="tools", messages=conversation, tools=[WEATHER_TOOL])
    assert (answer.choices[0].message.content, answer.choices[0].finish_reason) == (TOOL_ANSWER, "stop")


def test_responses_tool_round_trip(gw: GatewayApp) -> None:
    client = gw.client()
    first = client.responses.create(
        model="tools", input="What is the weather in Paris?", tools=[RESPONSES_TOOL]
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == (TOOL_NAME, TOOL_ARGUMENTS) and call.call_id
    second = client.responses.create(
        model="tools",
        tools=[RESPONSES_TOOL],
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"},
        ],
    )
    assert second.output_text == TOOL_ANSWER


def test_ollama_tool_round_trip(gw: GatewayApp) -> None:
    first = llama(gw).chat(model="tools", messages=ASK, tools=[WEATHER_TOOL])
    [call] = first.message.tool_calls or []
    assert (call.function.name, dict(call.function.arguments)) == (TOOL_NAME, TOOL_ARGUMENTS)
    conversation = [*ASK, first.message, {"role": "tool", "content": "sunny, 24 C", "tool_name": TOOL_NAME}]
    second = llama(gw).chat(model="tools", messages=conversation, tools=[WEATHER_TOOL])
    assert second.message.content == TOOL_ANSWER and second.done


def test_a_plain_answer_assembled_from_the_stream_keeps_mlx_lms_shape(gw: GatewayApp) -> None:
    whole = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "think", "messages": HI},
                       timeout=60, trust_env=False).json()  # fmt: skip
    assert (
        whole["object"] == "chat.completion"
        and whole["id"]
        and whole["created"]
        and whole["model"] == "think"
    )
    [choice] = whole["choices"]
    assert choice["message"] == {"role": "assistant", "content": THINK_CONTENT, "reasoning": THINK_REASONING}
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    usage = whole["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    text = gw.client().completions.create(model="plain", prompt="hi", max_tokens=3)
    assert text.object == "text_completion" and text.choices[0].finish_reason == "length"
    assert text.usage.completion_tokens == 3 and text.choices[0].text == "Hello there!"


def test_a_client_that_leaves_a_plain_request_frees_the_model(gw: GatewayApp) -> None:
    gw.client().chat.completions.create(model="endless", messages=HI, max_tokens=2)  # started, ready
    server = gw.supervisor.servers["endless"]
    body = {"model": "endless", "messages": HI, "max_tokens": 100_000}
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(60, read=1.5)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post(f"{gw.url}/v1/chat/completions", json=body)
    deadline = time.monotonic() + 1.0
    while server.active_requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.active_requests == 0
    begun = time.monotonic()
    reply = gw.client().chat.completions.create(model="endless", messages=HI, max_tokens=2)
    assert reply.choices[0].finish_reason == "length"
    assert time.monotonic() - begun < 2.0  # the server is free, not still generating


def test_a_tool_choice_that_forces_a_call_is_refused_not_ignored(gw: GatewayApp) -> None:
    """No model server reads tool_choice: forcing a call would silently do nothing, so it is a 400."""
    before = started(gw)
    for choice in ("required", {"type": "function", "function": {"name": TOOL_NAME}}):
        with pytest.raises(openai.BadRequestError) as caught:
            gw.client().chat.completions.create(
                model="tools", messages=ASK, tools=[WEATHER_TOOL], tool_choice=choice
            )
        assert (
            "`tool_choice`" in caught.value.body["message"]
            and "cannot be honoured" in caught.value.body["message"]
        )
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude(gw).messages.create(
            model="tools", max_tokens=32, messages=ASK, tool_choice={"type": "any"},
            tools=[{"name": TOOL_NAME, "input_schema": WEATHER_TOOL["function"]["parameters"]}],
        )  # fmt: skip
    assert "tool_choice" in refused.value.message
    assert started(gw) == before, "refused before any model starts"
