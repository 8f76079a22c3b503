"""OpenAI Responses on the gateway against real mlx_lm.server processes: the official `openai`
client's `responses.create` (plain and streamed), `responses.stream` and `responses.retrieve`
get the scripted models' exact replies, and every refusal is an OpenAI-shaped error."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import openai
import psutil
import pytest

from mlxui.config import Config
from tests.harness.fixtures_models import HubCache
from tests.harness.models import ENDLESS_CYCLE, PLAIN_REPLY, THINK_CONTENT, THINK_REASONING
from tests.test_gateway import GatewayApp

pytestmark = pytest.mark.slow
PLAIN = "scripted-plain"  # local models answer to their short names: no profiles needed
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def gw(hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayApp]:
    home = tmp_path_factory.mktemp("responses-home")
    with GatewayApp(Config(home=home, hf_cache=hub_cache.cache_dir), []) as app:
        yield app


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_plain_reply_is_the_scripted_one_and_is_retrievable(gw: GatewayApp) -> None:
    client = gw.client()
    response = client.responses.create(model=PLAIN, input="hi")
    assert response.output_text == PLAIN_REPLY
    assert response.id.startswith("resp_") and response.object == "response"
    assert (response.status, response.model) == ("completed", PLAIN)
    assert [item.type for item in response.output] == ["message"]
    assert response.output[0].content[0].type == "output_text"
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    again = client.responses.retrieve(response.id)
    assert again.id == response.id and again.output_text == PLAIN_REPLY
    assert again.usage == response.usage


def test_streamed_events_are_what_the_sdk_expects(gw: GatewayApp) -> None:
    client = gw.client()
    events = list(client.responses.create(model=PLAIN, input="hi", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta"]  # fmt: skip
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]  # fmt: skip
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == PLAIN_REPLY
    final = events[-1].response
    assert final.output_text == PLAIN_REPLY and final.usage.output_tokens > 0
    # The SDK's own accumulator (strict about item identities) assembles the same response.
    with client.responses.stream(model=PLAIN, input="hi") as stream:
        assembled = stream.get_final_response()
    assert assembled.output_text == PLAIN_REPLY
    assert client.responses.retrieve(final.id).output_text == PLAIN_REPLY  # streamed ones are kept too


def test_thinking_becomes_a_reasoning_item(gw: GatewayApp) -> None:
    client = gw.client()
    response = client.responses.create(model="scripted-think-tokens", input="hi")
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == THINK_REASONING
    assert response.output_text == THINK_CONTENT
    events = list(client.responses.create(model="scripted-think-tokens", input="hi", stream=True))
    thinking = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (thinking, text) == (THINK_REASONING, THINK_CONTENT)
    assert events[-1].response.output[0].content[0].text == THINK_REASONING


def test_instructions_and_previous_response_reach_the_model(gw: GatewayApp) -> None:
    client = gw.client()
    alone = client.responses.create(model=PLAIN, input="hi")
    prompt = alone.usage.input_tokens  # <|user|> hi <|end|> <|assistant|>
    instructed = client.responses.create(model=PLAIN, input="hi", instructions="hello")
    assert instructed.usage.input_tokens == prompt + 3  # <|system|> hello <|end|>
    assert instructed.instructions == "hello"
    # The second turn carries the first (its input and its reply); instructions do not carry over:
    # its prompt is exactly that conversation's, as the chat route counts it.
    second = client.responses.create(model=PLAIN, input="hi", previous_response_id=instructed.id)
    assert second.previous_response_id == instructed.id
    assert second.output_text == PLAIN_REPLY
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": PLAIN_REPLY}]
    assert second.usage.input_tokens == _chat_prompt_tokens(gw, [*turns, turns[0]])
    third = client.responses.create(model=PLAIN, input="hi", previous_response_id=second.id, stream=True)
    final = list(third)[-1].response
    assert final.usage.input_tokens == _chat_prompt_tokens(gw, [*turns, *turns, turns[0]])
    assert final.usage.input_tokens > second.usage.input_tokens > instructed.usage.input_tokens


def _chat_prompt_tokens(gw: GatewayApp, messages: list[dict]) -> int:
    reply = gw.client().chat.completions.create(model=PLAIN, messages=messages, max_tokens=1)
    assert reply.usage is not None
    return reply.usage.prompt_tokens


def test_store_false_and_unknown_ids_are_404_and_delete_forgets(gw: GatewayApp) -> None:
    client = gw.client()
    unstored = client.responses.create(model=PLAIN, input="hi", store=False)
    assert unstored.output_text == PLAIN_REPLY
    for response_id in (unstored.id, "resp_nope"):
        with pytest.raises(openai.NotFoundError) as missing:
            client.responses.retrieve(response_id)
        assert missing.value.body["code"] == "response_not_found"
    with pytest.raises(openai.BadRequestError) as no_previous:
        client.responses.create(model=PLAIN, input="hi", previous_response_id=unstored.id)
    assert no_previous.value.body["code"] == "previous_response_not_found"
    kept = client.responses.create(model=PLAIN, input="hi")
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)


def test_errors_have_openai_shape(gw: GatewayApp) -> None:
    client = gw.client()
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model="scripted-plian", input="hi")
    assert unknown.value.status_code == 404 and PLAIN in unknown.value.message
    assert unknown.value.body["code"] == "model_not_found"
    bad_bodies = {
        "input_required": {"model": PLAIN},
        "invalid_request": {"model": PLAIN, "input": 42},
        "unsupported_tool": {"model": PLAIN, "input": "hi", "tools": [{"type": "web_search"}]},
        "unsupported_input": {"model": PLAIN, "input": [{"type": "item_reference", "id": "x"}]},
        "unsupported_parameter": {"model": PLAIN, "input": "hi", "text": {"format": {"type": "json_object"}}},
        "invalid_type": {"model": PLAIN, "input": "hi", "temperature": "hot"},
        "model_required": {"input": "hi"},
    }
    for code, body in bad_bodies.items():
        answer = httpx.post(gw.url + "/v1/responses", json=body, timeout=30)
        assert answer.status_code == 400, (code, answer.text)
        error = answer.json()["error"]
        assert (error["code"], error["type"]) == (code, "invalid_request_error") and error["message"]
    not_json = httpx.post(gw.url + "/v1/responses", content=b"{", headers=JSON, timeout=30)
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_json")
    assert httpx.get(gw.url + "/v1/responses", timeout=30).status_code == 405


def test_max_output_tokens_makes_an_incomplete_response(gw: GatewayApp) -> None:
    client = gw.client()
    response = client.responses.create(model="scripted-endless", input="hi", max_output_tokens=6)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == ENDLESS_CYCLE * 2 and response.usage.output_tokens == 6
    events = list(client.responses.create(model="scripted-endless", input="hi", max_output_tokens=3,
                                          stream=True))  # fmt: skip
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output_text == ENDLESS_CYCLE


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_frees_the_model(gw: GatewayApp, stream: bool) -> None:
    body = {"model": "scripted-endless", "input": "hi", "max_output_tokens": 100_000, "stream": stream}
    if stream:
        with httpx.stream("POST", gw.url + "/v1/responses", json=body, timeout=30) as answer:
            assert answer.status_code == 200
            deltas = 0
            for line in answer.iter_lines():
                deltas += line == "event: response.output_text.delta"
                if deltas >= 20:
                    break
    else:  # a plain request is streamed from the model server too: leaving stops it as well
        gw.client().responses.create(model="scripted-endless", input="hi", max_output_tokens=6)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(gw.url + "/v1/responses", json=body, timeout=1.0)
    server = gw.supervisor.servers["mlxui-test/scripted-endless"]
    _wait_for(lambda: server.active_requests == 0, 1.0, "the gateway to let go of the server")
    process = psutil.Process(server.pid)
    process.cpu_percent()
    _wait_for(lambda: time.sleep(0.5) or process.cpu_percent() < 20, 3.0, "the server to go idle")
    started = time.monotonic()
    reply = gw.client().responses.create(model="scripted-endless", input="hi", max_output_tokens=3)
    assert time.monotonic() - started < 1.0 and reply.output_text == ENDLESS_CYCLE
