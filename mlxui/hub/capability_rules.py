"""The rules that turn a model's config and template files into capabilities.

Each function looks at already-parsed JSON (dicts, possibly empty) or template text and answers one
question. They never raise on odd shapes: real configs put the same fact in different places.
"""

from __future__ import annotations

import re
from typing import Any

# Where multimodal configs keep the language model's numbers (Gemma 3/LLaVA: text_config,
# InternVL: llm_config, DeepSeek-VL2: language_config). Checked before the top level because the
# top level of such configs describes the wrapper, not the LM.
_SUB_CONFIGS = ("text_config", "llm_config", "language_config")

_CONTEXT_KEYS = (
    "max_position_embeddings",
    "max_seq_len",
    "max_sequence_length",
    "seq_length",
    "n_ctx",
    "n_positions",
)

# Tokenizers save "no limit" as 1e30; anything past this is a placeholder, not a context length.
_MAX_PLAUSIBLE_CONTEXT = 16 * 1024 * 1024

VLM_MODEL_TYPES = frozenset(
    {
        "llava", "llava_next", "llava_onevision", "llava_qwen2", "qwen2_vl", "qwen2_5_vl",
        "qwen3_vl", "qwen3_vl_moe", "gemma3", "gemma3n", "paligemma", "idefics2", "idefics3",
        "smolvlm", "pixtral", "mistral3", "mllama", "llama4", "phi3_v", "florence2", "molmo",
        "internvl_chat", "deepseek_vl_v2", "kimi_vl", "aya_vision", "glm4v", "multi_modality",
    }
)  # fmt: skip
_VISION_ARCH = re.compile(
    r"VL|Vision|Llava|Pixtral|Idefics|PaliGemma|Mllama|Gemma3ForConditional|Mistral3|Llama4ForConditional",
    re.I,
)

AUDIO_MODEL_TYPES = frozenset(
    {
        "whisper",
        "qwen2_audio",
        "voxtral",
        "wav2vec2",
        "hubert",
        "parakeet",
        "encodec",
        "csm",
        "kokoro",
        "gemma3n",
    }
)
_AUDIO_ARCH = re.compile(r"Whisper|Audio|Speech|Wav2Vec|Voxtral|ForCTC", re.I)

ENCODER_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "nomic_bert", "modernbert", "new", "electra"}
)
SENTENCE_TRANSFORMERS_FILES = (
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
)

# Reasoning markers in chat templates: Qwen3's switch, the field templates replay past thoughts
# from, literal tags (DeepSeek-R1, Qwen), Mistral's [THINK], gpt-oss harmony's analysis channel.
_THINKING_TEMPLATE = re.compile(
    r"enable_thinking|reasoning_content|reasoning_effort|<think>|\[THINK\]|<\|channel\|>\s*analysis"
    r"|['\"]analysis['\"]"
)
_THINKING_TOKENS = (("<think>", "</think>"), ("[THINK]", "[/THINK]"))

# Jinja code: the insides of {% ... %} and {{ ... }}; literal text is not code.
_JINJA_CODE = re.compile(r"\{[{%]-?(.*?)-?[%}]\}", re.S)
# `tools` as a variable, not `custom_tools`, `message.tools` or the word inside a string literal.
_TOOLS_VAR = re.compile(r"(?<![\w.'\"])tools\b(?!['\"])")


def as_int(value: Any) -> int | None:
    """An int from a JSON value, or None for anything that is not a whole number (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _positive(value: Any) -> int | None:
    number = as_int(value)
    return number if number and number > 0 else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def model_type(config: dict[str, Any]) -> str | None:
    return as_str(config.get("model_type"))


def architectures(config: dict[str, Any]) -> list[str]:
    found = config.get("architectures")
    return [a for a in found if isinstance(a, str)] if isinstance(found, list) else []


def lm_views(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The language-model sections of a config, most specific first, top level last."""
    views = [config[key] for key in _SUB_CONFIGS if isinstance(config.get(key), dict)]
    return [*views, config]


def first_int(config: dict[str, Any], *keys: str) -> int | None:
    """The first positive int found under any of `keys`, looking in the LM sections first."""
    for view in lm_views(config):
        for key in keys:
            value = as_int(view.get(key))
            if value is not None and value > 0:
                return value
    return None


def context_length(config: dict[str, Any], tokenizer_config: dict[str, Any]) -> int | None:
    """The longest prompt + reply the model was built for. `sliding_window` is ignored on purpose:
    it limits how far each layer looks, not how long the conversation may be."""
    found = first_int(config, *_CONTEXT_KEYS)
    if found is not None:
        return found
    fallback = as_int(tokenizer_config.get("model_max_length"))
    if fallback and 0 < fallback <= _MAX_PLAUSIBLE_CONTEXT:
        return fallback
    return None


def quantization_section(config: dict[str, Any]) -> dict[str, Any]:
    """The quantization dict as written by mlx_lm/mlx_vlm ("quantization") or transformers
    ("quantization_config"); {} when the model is not quantized."""
    for view in [config, *lm_views(config)[:-1]]:
        for key in ("quantization", "quantization_config"):
            if isinstance(view.get(key), dict):
                return view[key]
    return {}


def quantization(config: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(bits, group_size, mode) of the default quantization."""
    section = quantization_section(config)
    if not section:
        return None, None, None
    bits, group = _positive(section.get("bits")), _positive(section.get("group_size"))
    mode = section.get("mode") if isinstance(section.get("mode"), str) else None
    method = section.get("quant_method") if isinstance(section.get("quant_method"), str) else None
    if mode is None and method == "mxfp4":  # the original gpt-oss checkpoints
        mode, bits, group = "mxfp4", bits or 4, group or 32
    elif mode is None and method == "bitsandbytes":
        bits = bits or (4 if section.get("load_in_4bit") else 8 if section.get("load_in_8bit") else None)
        mode = method
    elif mode is None and method in ("fp8", "compressed-tensors", "gptq", "awq"):
        bits, mode = bits or (8 if method == "fp8" else None), method
    elif mode is None and bits is not None:
        mode = "affine"  # mlx writes no mode for its default scheme
    return bits, group, mode


def chat_template_text(tokenizer_config: dict[str, Any], *sources: Any) -> str:
    """All chat templates the repo ships, joined: tokenizer_config's (a string or a list of named
    templates), chat_template.jinja, and the `chat_template` field of the JSON files."""
    parts: list[str] = []
    for source in (tokenizer_config.get("chat_template"), *sources):
        if isinstance(source, dict):
            source = source.get("chat_template")
        if isinstance(source, str):
            parts.append(source)
        elif isinstance(source, list):
            parts.extend(
                t["template"] for t in source if isinstance(t, dict) and isinstance(t.get("template"), str)
            )
    return "\n".join(parts)


def has_tools(template: str) -> bool:
    """The template renders a `tools` list into the prompt. Replaying `tool_calls` from history
    alone (DeepSeek-R1's template) does not count: the model is never told which tools exist."""
    return any(_TOOLS_VAR.search(code) for code in _JINJA_CODE.findall(template))


def added_tokens(tokenizer_config: dict[str, Any]) -> set[str]:
    """Contents of the added/special tokens listed in tokenizer_config.json."""
    tokens: set[str] = set()
    decoder = tokenizer_config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        tokens.update(
            t["content"]
            for t in decoder.values()
            if isinstance(t, dict) and isinstance(t.get("content"), str)
        )
    extra = tokenizer_config.get("additional_special_tokens")
    if isinstance(extra, list):
        tokens.update(t for t in extra if isinstance(t, str))
    return tokens


def has_thinking(template: str, tokens: set[str]) -> bool:
    """Reasoning tokens in the vocabulary (mlx_lm.server then splits them into `reasoning`) or
    reasoning markers in the chat template."""
    if any(start in tokens and end in tokens for start, end in _THINKING_TOKENS):
        return True
    has_channel = "<|channel|>" in template or "<|channel|>" in tokens
    markers = _THINKING_TEMPLATE.findall(template)
    return any(m.strip("'\"") != "analysis" or has_channel for m in markers)


def has_vision(config: dict[str, Any], architecture: str | None, processors: list[dict[str, Any]]) -> bool:
    """A vision tower, image tokens, an image processor, or a known VLM family."""
    if isinstance(config.get("vision_config"), dict):
        return True
    if any(key in config for key in ("image_token_id", "image_token_index")):
        return True
    if model_type(config) in VLM_MODEL_TYPES:
        return True
    if architecture and _VISION_ARCH.search(architecture):
        return True
    image_keys = ("image_processor_type", "image_processor", "image_mean", "crop_size")
    return any(key in proc for proc in processors for key in image_keys)


def has_audio(config: dict[str, Any], architecture: str | None, processors: list[dict[str, Any]]) -> bool:
    """Speech/audio models: an audio encoder, an audio feature extractor, or a known family."""
    if model_type(config) in AUDIO_MODEL_TYPES or isinstance(config.get("audio_config"), dict):
        return True
    if architecture and _AUDIO_ARCH.search(architecture):
        return True
    return any("feature_extractor_type" in proc or "sampling_rate" in proc for proc in processors)


def is_embeddings(config: dict[str, Any], architectures: list[str], file_names: set[str]) -> bool:
    """Sentence-transformers repos, or encoder-only (BERT-like) models without an LM head."""
    if file_names.intersection(SENTENCE_TRANSFORMERS_FILES):
        return True
    generative = any(
        a.endswith(("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")) for a in architectures
    )
    if generative:
        return False
    if model_type(config) in ENCODER_MODEL_TYPES:
        return True
    return bool(architectures) and all(a.endswith(("Model", "ForSentenceEmbedding")) for a in architectures)


def parameters_from_dims(config: dict[str, Any]) -> int | None:
    """Rough size of a transformer from its dimensions: attention + MLP + two norms per layer,
    the final norm, plus embeddings (twice when the output head is not tied to them). Falls back to
    12·L·h² when the MLP width is missing. MoE models multiply the MLP by their expert count.
    SmolLM2-135M (30 layers, hidden 576, MLP 1536, 9 heads, 3 KV heads, vocab 49152, tied) comes
    out at 134,515,008, its exact count."""
    layers, hidden = (
        first_int(config, "num_hidden_layers", "n_layer"),
        first_int(config, "hidden_size", "d_model"),
    )
    if not (layers and hidden):
        return None
    vocab = first_int(config, "vocab_size") or 0
    heads = first_int(config, "num_attention_heads", "n_head")
    kv_heads = first_int(config, "num_key_value_heads") or heads
    head_dim = first_int(config, "head_dim") or (hidden // heads if heads else None)
    inter = first_int(config, "intermediate_size", "ffn_dim")
    experts = first_int(config, "num_local_experts", "num_experts", "n_routed_experts") or 1
    if heads and head_dim and inter:
        attention = hidden * head_dim * (2 * heads + 2 * (kv_heads or heads))
        # gated MLPs (SwiGLU & co.) have three matrices; BERT-style encoders two
        matrices = 2 if model_type(config) in ENCODER_MODEL_TYPES else 3
        per_layer = attention + matrices * hidden * inter * experts + 2 * hidden
    else:
        per_layer = 12 * hidden * hidden
    return layers * per_layer + hidden + vocab * hidden * (1 if tied_embeddings(config) else 2)


def tied_embeddings(config: dict[str, Any], *, default: bool = True) -> bool:
    """Does the output head reuse the input embeddings (`tie_word_embeddings`)? Then the model has
    one vocab x hidden matrix, not two. transformers ties them unless the config says otherwise
    (`default`); pass default=False where only an explicit `true` may change a count."""
    values = [view.get("tie_word_embeddings") for view in lm_views(config)]
    if any(value is False for value in values):
        return False
    return True if any(value is True for value in values) else default


def bits_per_parameter(bits: int | None, group: int | None, mode: str | None, dtype: str | None) -> float:
    """Average stored bits per parameter, counting the per-group scales (and affine biases),
    which are 16-bit for affine and 8-bit for the microscaling formats."""
    if bits:
        if mode == "affine":
            return bits + 32 / (group or 64)
        if mode in ("mxfp4", "nvfp4", "mxfp8"):
            return bits + 8 / (group or 32)
        return float(bits)
    return 32.0 if dtype in ("float32", "F32") else 16.0


def parameters_from_dtype_counts(
    counts: dict[str, int], bits: int | None, group: int | None, mode: str | None
) -> int:
    """Logical parameters from the Hub's per-dtype element counts (`safetensors.parameters` in
    model info), which count a packed uint32 as one element and include scales and biases."""
    total = sum(v for v in counts.values() if isinstance(v, int))
    packed = counts.get("U32", 0)
    if not (packed and bits):
        return total
    logical = packed * 32 // bits
    groups = logical // (group or 64)
    aux_dtype = "U8" if mode in ("mxfp4", "nvfp4", "mxfp8") else _largest_float(counts)
    aux = groups * (2 if mode == "affine" else 1)
    return total - packed + logical - min(aux, counts.get(aux_dtype, 0))


def _largest_float(counts: dict[str, int]) -> str:
    floats = {k: v for k, v in counts.items() if k in ("BF16", "F16", "F32")}
    return max(floats, key=lambda k: floats[k]) if floats else "BF16"
