"""The OpenAI Responses translation without servers: requests to chat bodies, chat chunks (as
mlx_lm.server streams them) to Responses events that the official SDK's types and its strict
stream accumulator accept, function tools both ways, and the bounded store.

The tool round trip against a real tool-calling model waits for the scripted tool model (branch
`anth`); until then these tests pin the translation on both sides of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from mlxui.servers.dialects.response_store import ResponseStore
from mlxui.servers.dialects.responses_output import ResponseBuilder
from mlxui.servers.dialects.responses_request import parse_request
from mlxui.servers.model_calls import CallError

EVENT = TypeAdapter(ResponseStreamEvent)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}


def _run(chunks: list[dict[str, Any]], **echo: Any) -> tuple[ResponseBuilder, list[Any]]:
    """Feed chunks; every event is validated by the SDK's types and its stream accumulator."""
    builder = ResponseBuilder("m", {"tools": [], "tool_choice": "auto", "parallel_tool_calls": True, **echo})
    raw = builder.start()
    for chunk in chunks:
        raw += builder.feed(chunk)
    raw += builder.finish()
    events = [EVENT.validate_python(event) for event in raw]
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(event)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    return builder, events


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _finish(reason: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def test_input_items_become_chat_messages() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Use tools."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is "},
                    {"type": "input_text", "text": "this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
                ],
            },  # fmt: skip
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Looking.", "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {
                "type": "function_call",
                "call_id": "call_2",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "rain"},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [{"type": "input_text", "text": "sun"}],
            },
        ],
        "max_output_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
    }
    request = parse_request(body, None)
    assert request.chat_body == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Use tools."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is "},
                    {"type": "text", "text": "this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },  # fmt: skip
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },  # fmt: skip
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
            {"role": "tool", "tool_call_id": "call_2", "content": "sun"},
        ],
        "stream": True,
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
    }
    assert request.conversation == request.chat_body["messages"][1:]  # instructions do not carry over
    assert (request.stream, request.store) == (False, True)


def test_previous_history_goes_between_instructions_and_the_new_turn() -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]
    request = parse_request({"model": "m", "input": "again", "instructions": "X", "store": False}, history)
    assert request.chat_body["messages"] == [{"role": "system", "content": "X"}, *history,
                                             {"role": "user", "content": "again"}]  # fmt: skip
    assert request.conversation == [*history, {"role": "user", "content": "again"}]
    assert request.store is False


def test_function_tools_and_tool_choice_translate() -> None:
    request = parse_request({"model": "m", "input": "hi", "tools": [WEATHER_TOOL],
                             "tool_choice": {"type": "function", "name": "get_weather"}}, None)  # fmt: skip
    assert request.chat_body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city", "parameters": WEATHER_TOOL["parameters"]}}]  # fmt: skip
    assert request.chat_body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert request.echo["tools"] == [WEATHER_TOOL]
    none = parse_request({"model": "m", "input": "hi", "tools": [WEATHER_TOOL], "tool_choice": "none"}, None)
    assert "tools" not in none.chat_body  # tool_choice none: the model is not offered them


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "m", "input": "hi", "tools": [{"type": "file_search"}]}, "unsupported_tool"),
        ({"model": "m", "input": [{"type": "input_file", "file_id": "f"}]}, "unsupported_input"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
         "unsupported_input"),
        ({"model": "m", "input": [{"role": "robot", "content": "hi"}]}, "invalid_request"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "invalid_request"),
        ({"model": "m", "input": "hi", "tool_choice": "sometimes", "tools": [WEATHER_TOOL]}, "invalid_request"),
        ({"model": "m", "input": "hi", "max_output_tokens": 0}, "invalid_request"),
        ({"model": "m", "input": "hi", "stream": "yes"}, "invalid_type"),
        ({"model": "m", "input": "hi", "background": True}, "unsupported_parameter"),
        ({"model": "m", "input": "hi", "n": 2}, "unsupported_parameter"),
    ],
)  # fmt: skip
def test_what_cannot_be_translated_is_a_400(body: dict[str, Any], code: str) -> None:
    with pytest.raises(CallError) as refused:
        parse_request(body, None)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_a_streamed_tool_call_becomes_a_function_call_item_and_history() -> None:
    # mlx_lm.server streams each parsed call whole, with an index; arguments are a JSON string.
    call = {"index": 0, "id": "call_abc", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}}  # fmt: skip
    builder, events = _run(
        [_delta(role="assistant"), _delta(tool_calls=[call]), _finish("tool_calls"), USAGE]
    )
    response = Response.model_validate(builder.response)
    assert [item.type for item in response.output] == ["function_call"]
    item = response.output[0]
    assert (item.call_id, item.name, json.loads(item.arguments)) == (
        "call_abc",
        "get_weather",
        {"city": "Oslo"},
    )
    assert [e.type for e in events][2:] == ["response.output_item.added", "response.function_call_arguments.delta",
                                            "response.function_call_arguments.done", "response.output_item.done",
                                            "response.completed"]  # fmt: skip
    assert response.usage is not None and response.usage.total_tokens == 12
    # The round trip: the call and the client's function_call_output make the next chat request.
    next_turn = parse_request({"model": "m", "input": [
        {"type": "function_call_output", "call_id": "call_abc", "output": "rain"}]}, builder.history())  # fmt: skip
    assert next_turn.chat_body["messages"] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "rain"},
    ]  # fmt: skip


def test_tool_calls_in_pieces_text_and_thinking_open_items_in_order() -> None:
    chunks = [
        _delta(reasoning="Need "), _delta(reasoning="weather."),
        _delta(content="Checking "), _delta(content="both."),
        _delta(tool_calls=[{"index": 0, "id": "c0", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city":'}}]),
        _delta(tool_calls=[{"index": 0, "function": {"arguments": '"Oslo"}'}}]),
        _delta(tool_calls=[{"index": 1, "id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]),
        _finish("tool_calls"), USAGE,
    ]  # fmt: skip
    builder, events = _run(chunks)
    output = Response.model_validate(builder.response).output
    assert [item.type for item in output] == ["reasoning", "message", "function_call", "function_call"]
    assert output[0].content[0].text == "Need weather." and output[1].content[0].text == "Checking both."
    assert [(o.call_id, o.arguments) for o in output[2:]] == [
        ("c0", '{"city":"Oslo"}'),
        ("c1", '{"city":"Rome"}'),
    ]
    assert len({o.id for o in output}) == 4
    assert builder.history() == [{"role": "assistant", "content": "Checking both.", "tool_calls": [
        {"id": "c0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]}]  # fmt: skip


def test_length_makes_an_incomplete_response_and_a_break_a_failed_one() -> None:
    builder, events = _run([_delta(content="la la"), _finish("length"), USAGE])
    assert events[-1].type == "response.incomplete"
    response = Response.model_validate(builder.response)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete" and response.output_text == "la la"
    broken = ResponseBuilder("m", {"tools": [], "tool_choice": "auto", "parallel_tool_calls": True})
    raw = broken.start() + broken.feed(_delta(content="Hel")) + broken.failed("upstream_error", "it died")
    kinds = [EVENT.validate_python(event).type for event in raw]
    assert kinds[-2:] == ["error", "response.failed"]
    assert raw[-1]["response"]["error"]["message"] == "it died"


def test_store_is_bounded_by_count_and_age() -> None:
    now = [0.0]
    store = ResponseStore(max_items=2, max_age_s=60, clock=lambda: now[0])
    for n in range(3):
        store.put({"id": f"resp_{n}"}, [])
    assert store.get("resp_0") is None and len(store) == 2
    now[0] = 61
    store.put({"id": "resp_new"}, [{"role": "user", "content": "hi"}])
    assert store.get("resp_2") is None and store.get("resp_new").history[0]["content"] == "hi"
    assert store.delete("resp_new") and not store.delete("resp_new") and len(store) == 0
