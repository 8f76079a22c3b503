"""What a model card says about a model, from config/template shapes modelled on real repos.

The snippets under tests/data/model_shapes/ were written for these tests after the shapes of the
mlx-community and upstream repos they are named after (trimmed; no files were downloaded).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxui.hub.capabilities import (
    SMALL_FILES,
    Capabilities,
    format_context,
    format_parameters,
    parse_capabilities,
)

SHAPES = Path(__file__).parent / "data" / "model_shapes"


def shape_files(name: str) -> dict[str, str | bytes]:
    return {p.name: p.read_text(encoding="utf-8") for p in (SHAPES / name).iterdir()}


# What the user sees on each card; `params` is the real model's size for estimates (within 5%).
CASES = {
    "qwen3_8b_4bit": dict(
        architecture="Qwen3ForCausalLM", model_type="qwen3", context_length=40960,
        quant=(4, 64, "affine"), flags=dict(tools=True, thinking=True),
        parameters=8_190_735_360, estimated=False,
        badges=["Tools", "Thinking", "4-bit", "40K ctx", "8.2B"],
    ),
    "llama31_8b_instruct_4bit": dict(
        architecture="LlamaForCausalLM", model_type="llama", context_length=131072,
        quant=(4, 64, "affine"), flags=dict(tools=True),
        file_sizes={"model.safetensors": 4_517_150_720, "config.json": 1_121, "tokenizer.json": 9_085_657},
        parameters=8_030_000_000, estimated=True,
        badges=["Tools", "4-bit", "128K ctx", "~8B"],
    ),
    "gemma3_4b_it_4bit": dict(
        architecture="Gemma3ForConditionalGeneration", model_type="gemma3", context_length=131072,
        quant=(4, 64, "affine"), flags=dict(vision=True),
        # Hub's safetensors.parameters: 3.8e9 packed 4-bit params, their scales+biases, 0.5e9 unquantized
        dtype_counts={"U32": 475_000_000, "BF16": 118_750_000 + 500_000_000},
        parameters=4_300_000_000, estimated=False,
        badges=["Vision", "4-bit", "128K ctx", "4.3B"],
    ),
    "gpt_oss_20b_mxfp4": dict(
        architecture="GptOssForCausalLM", model_type="gpt_oss", context_length=131072,
        quant=(4, 32, "mxfp4"), flags=dict(tools=True, thinking=True),
        parameters=20_914_757_184, estimated=False,
        badges=["Tools", "Thinking", "MXFP4", "128K ctx", "21B"],
    ),
    "magistral_small_4bit": dict(
        architecture="MistralForCausalLM", model_type="mistral", context_length=131072,
        quant=(4, 64, "affine"), flags=dict(tools=True, thinking=True),
        parameters=23_572_000_000, estimated=True,
        badges=["Tools", "Thinking", "4-bit", "128K ctx", "~24B"],
    ),
    "deepseek_r1_distill_qwen_7b_8bit": dict(
        architecture="Qwen2ForCausalLM", model_type="qwen2", context_length=131072,
        quant=(8, 64, "affine"), flags=dict(thinking=True),  # replays tool_calls, offers no tools
        parameters=7_616_000_000, estimated=True,
        badges=["Thinking", "8-bit", "128K ctx", "~7.6B"],
    ),
    "qwen25_05b_instruct_transformers": dict(
        architecture="Qwen2ForCausalLM", model_type="qwen2", context_length=32768,
        quant=(None, None, None), flags=dict(tools=True),
        parameters=494_032_768, estimated=True,
        badges=["Tools", "32K ctx", "~494M"],
    ),
    "bge_small_embeddings": dict(
        architecture="BertModel", model_type="bert", context_length=512,
        quant=(None, None, None), flags=dict(embeddings=True),
        parameters=33_360_000, estimated=True,
        badges=["Embeddings", "512 ctx", "~33M"],
    ),
    "whisper_large_v3_turbo": dict(
        architecture="WhisperForConditionalGeneration", model_type="whisper", context_length=None,
        quant=(None, None, None), flags=dict(audio=True),
        parameters=None, estimated=False,
        badges=["Audio"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_model_card_facts(name: str) -> None:
    case = CASES[name]
    caps = parse_capabilities(
        shape_files(name),
        repo_id=f"mlx-community/{name}",
        file_sizes=case.get("file_sizes"),
        dtype_counts=case.get("dtype_counts"),
    )
    assert caps.problems == []
    assert caps.repo_id == f"mlx-community/{name}"
    assert (caps.architecture, caps.model_type) == (case["architecture"], case["model_type"])
    assert caps.context_length == case["context_length"]
    assert (caps.quant_bits, caps.quant_group_size, caps.quant_mode) == case["quant"]
    flags = {k: getattr(caps, k) for k in ("vision", "tools", "thinking", "embeddings", "audio")}
    assert flags == {k: case["flags"].get(k, False) for k in flags}
    if case["parameters"] is None:
        assert caps.parameters is None
    else:
        assert caps.parameters == pytest.approx(case["parameters"], rel=0.05)
    assert caps.parameters_estimated is case["estimated"]
    assert caps.badges() == case["badges"]


def test_exact_count_from_index_is_taken_as_is() -> None:
    caps = parse_capabilities(shape_files("qwen3_8b_4bit"))
    assert caps.parameters == 8_190_735_360
    assert caps.weight_bytes == 4_607_219_712  # index total_size when no file sizes are known


def test_sizes_split_download_from_weights() -> None:
    sizes = {
        "model-00001-of-00002.safetensors": 3_000,
        "model-00002-of-00002.safetensors": 1_000,
        "tokenizer.json": 500,
    }
    caps = parse_capabilities(shape_files("llama31_8b_instruct_4bit"), file_sizes=sizes)
    assert (caps.size_bytes, caps.weight_bytes) == (4_500, 4_000)


def test_corrupt_config_keeps_what_can_be_known() -> None:
    caps = parse_capabilities(shape_files("corrupt_config"), repo_id="someone/broken")
    assert caps.tools is True  # the tokenizer config was fine
    assert caps.architecture is None and caps.context_length is None and caps.parameters is None
    assert len(caps.problems) == 1 and caps.problems[0].startswith("config.json is not valid JSON")
    assert caps.badges() == ["Tools"]


def test_missing_files_give_an_empty_card_with_a_reason() -> None:
    caps = parse_capabilities({}, repo_id="someone/empty")
    assert caps.badges() == []
    assert caps.problems == ["config.json is missing: architecture, context and size are unknown"]


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"config.json": b"\xff\xfe{}"}, "config.json is not UTF-8 text"),
        ({"config.json": "[1, 2]"}, "config.json is not a JSON object"),
        ({"config.json": "{}", "tokenizer_config.json": "{"}, "tokenizer_config.json is not valid JSON"),
    ],
)
def test_unreadable_files_become_problems(files: dict[str, str | bytes], problem: str) -> None:
    caps = parse_capabilities(files)
    assert any(p.startswith(problem) for p in caps.problems), caps.problems


def test_wrongly_typed_numbers_are_ignored() -> None:
    config = {
        "model_type": "llama",
        "max_position_embeddings": "lots",
        "num_hidden_layers": True,
        "hidden_size": 4.5,
    }
    caps = parse_capabilities({"config.json": json.dumps(config)})
    assert (caps.context_length, caps.num_hidden_layers, caps.hidden_size) == (None, None, None)


def test_bytes_and_text_read_the_same() -> None:
    text = shape_files("gpt_oss_20b_mxfp4")
    raw = {k: v.encode() for k, v in text.items()}
    assert parse_capabilities(raw).to_dict() == parse_capabilities(text).to_dict()


def test_cached_dict_survives_json_and_older_rows() -> None:
    caps = parse_capabilities(shape_files("gemma3_4b_it_4bit"), repo_id="mlx-community/gemma-3-4b-it-4bit")
    again = Capabilities.from_dict(json.loads(json.dumps(caps.to_dict())))
    assert again == caps
    old_row = {"repo_id": "x/y", "vision": True, "a_field_from_the_future": 1}
    assert Capabilities.from_dict(old_row).badges() == ["Vision"]


def test_small_files_cover_what_the_parser_reads() -> None:
    for name in ("config.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json"):
        assert name in SMALL_FILES
    assert "tokenizer.json" not in SMALL_FILES  # megabytes; the config lists the added tokens


def tok(template: str | list[dict[str, str]], **extra: object) -> dict[str, str]:
    return {"config.json": "{}", "tokenizer_config.json": json.dumps({"chat_template": template, **extra})}


@pytest.mark.parametrize(
    ("files", "tools", "thinking"),
    [
        # Hermes-style named templates: the tool_use one offers tools
        (
            tok(
                [{"name": "default", "template": "{{ m }}"}, {"name": "tool_use", "template": "{{ tools }}"}]
            ),
            True,
            False,
        ),
        (tok("{% for t in custom_tools %}{{ t }}{% endfor %}"), False, False),  # never the `tools` variable
        (tok("You can't use tools here. {{ messages[0]['content'] }}"), False, False),  # literal text only
        (tok("{{ message['tools'] }} {{ 'tools' }}"), False, False),  # a key and a string, not the variable
        (tok("{% if tools is not none %}x{% endif %}"), True, False),
        (tok("{{ 'analysis' }}"), False, False),  # "analysis" without harmony channels
        (tok("{{ '<|channel|>' + 'analysis' }}"), False, True),
        (
            tok("{{ m }}", added_tokens_decoder={"7": {"content": "<think>"}, "8": {"content": "</think>"}}),
            False,
            True,
        ),
        (tok("{{ m }}", added_tokens_decoder={"7": {"content": "<think>"}}), False, False),  # half a pair
        (
            {"chat_template.json": json.dumps({"chat_template": "{%- if enable_thinking %}{% endif %}"})},
            False,
            True,
        ),
    ],
)
def test_tools_and_thinking_rules(files: dict[str, str], tools: bool, thinking: bool) -> None:
    caps = parse_capabilities(files)
    assert (caps.tools, caps.thinking) == (tools, thinking)


def test_original_gpt_oss_checkpoint_is_mxfp4() -> None:
    config = {"architectures": ["GptOssForCausalLM"], "quantization_config": {"quant_method": "mxfp4"}}
    caps = parse_capabilities({"config.json": json.dumps(config)})
    assert (caps.quant_bits, caps.quant_group_size, caps.quant_mode) == (4, 32, "mxfp4")
    assert "MXFP4" in caps.badges()


def test_sentence_transformers_repo_is_embeddings_even_with_a_causal_lm_class() -> None:
    config = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}
    caps = parse_capabilities(
        {"config.json": json.dumps(config)}, file_sizes={"config_sentence_transformers.json": 200}
    )
    assert caps.embeddings is True


def test_context_falls_back_to_a_plausible_tokenizer_limit() -> None:
    plausible = parse_capabilities(
        {"config.json": "{}", "tokenizer_config.json": '{"model_max_length": 2048}'}
    )
    placeholder = parse_capabilities(
        {"config.json": "{}", "tokenizer_config.json": '{"model_max_length": 1e30}'}
    )
    assert (plausible.context_length, placeholder.context_length) == (2048, None)


def test_whisper_feature_extractor_is_not_an_image_processor() -> None:
    caps = parse_capabilities(shape_files("whisper_large_v3_turbo"))
    assert caps.audio and not caps.vision


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        (512, "512"),
        (4096, "4K"),
        (32768, "32K"),
        (40960, "40K"),
        (131072, "128K"),
        (1048576, "1M"),
        (100000, "100K"),
    ],
)
def test_context_labels(tokens: int, text: str) -> None:
    assert format_context(tokens) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [(33_360_000, "33M"), (494_032_768, "494M"), (1_000_000_000, "1B"), (8_190_735_360, "8.2B"),
     (20_914_757_184, "21B"), (235_000_000_000, "235B"), (1_026_000_000_000, "1T")],
)  # fmt: skip
def test_parameter_labels(count: int, text: str) -> None:
    assert format_parameters(count) == text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=30), inner, max_size=6),
    max_leaves=30,
)
_keys = st.sampled_from(
    ["architectures", "model_type", "text_config", "quantization", "quantization_config", "vision_config",
     "max_position_embeddings", "num_hidden_layers", "hidden_size", "chat_template", "added_tokens_decoder",
     "metadata", "bits", "group_size", "mode", "quant_method", "tie_word_embeddings"]
)  # fmt: skip
_doc = st.dictionaries(_keys, _json, max_size=8)


@settings(max_examples=150, deadline=None)
@given(config=_doc, tokenizer=_doc, index=_doc, template=st.text(max_size=200))
def test_any_json_shape_yields_a_card_not_an_exception(config, tokenizer, index, template) -> None:
    files = {
        "config.json": json.dumps(config),
        "tokenizer_config.json": json.dumps(tokenizer),
        "model.safetensors.index.json": json.dumps(index),
        "chat_template.jinja": template,
    }
    caps = parse_capabilities(files, dtype_counts={"U32": 10, "BF16": 4})
    assert isinstance(caps.badges(), list)
    json.dumps(caps.to_dict())
