"""Proof that the scripted tool-calling model behaves as the dialect tests assume, straight against
mlx_lm.server with a plain OpenAI `tools` request (tests/harness/tool_models.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.harness.mlxserver import RunningServer
from tests.harness.tool_models import TOOL_ANSWER, TOOL_ARGUMENTS, TOOL_NAME, WEATHER_TOOL

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def chat(server: RunningServer, **body: object) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/chat/completions", json={"model": server.model, **body}, timeout=60
    )


def test_a_tools_request_gets_a_parsed_tool_call(tools_server: RunningServer) -> None:
    answer = chat(tools_server, messages=ASK, tools=[WEATHER_TOOL]).json()
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == TOOL_NAME
    assert json.loads(call["function"]["arguments"]) == TOOL_ARGUMENTS
    assert not choice["message"]["content"]


def test_a_streamed_tools_request_gets_the_tool_call_in_a_delta(tools_server: RunningServer) -> None:
    calls, finish = [], None
    with httpx.stream(
        "POST",
        f"{tools_server.base_url}/v1/chat/completions",
        json={"model": tools_server.model, "messages": ASK, "tools": [WEATHER_TOOL], "stream": True},
        timeout=60,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                calls += choice["delta"].get("tool_calls") or []
                finish = choice.get("finish_reason") or finish
    assert finish == "tool_calls"
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        (TOOL_NAME, TOOL_ARGUMENTS)
    ]


def test_the_tool_result_turn_gets_the_plain_answer(tools_server: RunningServer) -> None:
    first = chat(tools_server, messages=ASK, tools=[WEATHER_TOOL]).json()["choices"][0]["message"]
    conversation = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": first["tool_calls"]},
        {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "sunny, 24 C"},
    ]
    answer = chat(tools_server, messages=conversation, tools=[WEATHER_TOOL]).json()["choices"][0]
    assert (answer["message"]["content"], answer["finish_reason"]) == (TOOL_ANSWER, "stop")
