"""A scripted tool-calling model: its template renders tools, its greedy reply is a tool call.

mlx_lm.server finds tool calls by the tokenizer's tool parser (`tool_parser_type` in
tokenizer_config.json, else guessed from the template): with `json_tools` the text between the
special tokens `<tool_call>` and `</tool_call>` is JSON `{"name": ..., "arguments": {...}}`, which
the server answers as OpenAI `tool_calls` with `finish_reason: "tool_calls"`.

The reply depends on the conversation's last message, so a whole round trip works: a prompt that
ends with a tool result gets `<|assistant|><|tool_done|>` from the template, and `<|tool_done|>`
starts the plain answer TOOL_ANSWER; every other prompt gets the tool call.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness.models import build_scripted

TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = {"city": "Paris"}
TOOL_CALL_JSON = json.dumps({"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS})
TOOL_CALL_TOKENS = ["<tool_call>", TOOL_CALL_JSON, "</tool_call>"]
TOOL_ANSWER_TOKENS = ["It", " is", " sunny", " in", " Paris", "."]
TOOL_ANSWER = "It is sunny in Paris."  # the reply once the last message is a tool result
TOOL_DONE = "<|tool_done|>"
WEATHER_TOOL = {  # an OpenAI function tool the model "calls"
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

# Tools first (as JSON, one line each), then the turns; an assistant turn's tool calls are rendered
# in the same <tool_call> form the model emits. mlx_lm.server joins text parts into one string and
# turns tool-call arguments into dicts before it renders.
TOOL_CHAT_TEMPLATE = (
    "{%- if tools -%}<|system|>{%- for tool in tools -%}{{ tool | tojson }}{%- endfor -%}<|end|>{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}{%- endif -%}"
    "{%- if message.tool_calls -%}{%- for tool_call in message.tool_calls -%}"
    '<tool_call>{"name": {{ tool_call.function.name | tojson }}, '
    '"arguments": {{ tool_call.function.arguments | tojson }}}</tool_call>'
    "{%- endfor -%}{%- endif -%}"
    "<|end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>"
    "{%- if messages[-1]['role'] == 'tool' -%}<|tool_done|>{%- endif -%}{%- endif -%}"
)


def build_scripted_tools(dest: Path) -> Path:
    """Calls TOOL_NAME with TOOL_ARGUMENTS; answers TOOL_ANSWER once it has the tool's result."""
    return build_scripted(
        dest,
        TOOL_CALL_TOKENS,
        more_specials=("<tool_call>", "</tool_call>", TOOL_DONE),
        branches={TOOL_DONE: TOOL_ANSWER_TOKENS},
        chat_template=TOOL_CHAT_TEMPLATE,
        tokenizer_extra={"tool_parser_type": "json_tools"},
    )
