"""Capabilities of downloaded model folders: exact parameter counts from safetensors headers.

mlx_lm's own `get_total_parameters` on the live model is the oracle for quantized layers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.models import llama
from mlx_lm.utils import get_total_parameters, quantize_model, save_model
from safetensors.numpy import save_file

from mlxui.hub.capabilities import read_local_capabilities

TINY_LLAMA = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "vocab_size": 256,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}
QWEN_TEMPLATE = {
    "chat_template": "{% if tools %}{{ tools | tojson }}{% endif %}{% if enable_thinking %}{% endif %}"
}


def build_quantized_llama(folder: Path, mode: str) -> int:
    """Save a tiny llama quantized by mlx_lm itself (lm_head at 8 bits, as a per-layer entry);
    return mlx_lm's own count of its parameters."""
    model = llama.Model(llama.ModelArgs.from_dict(TINY_LLAMA))
    group = 64 if mode == "affine" else 32

    def predicate(path: str, module: object) -> bool | dict:
        return (
            {"group_size": group, "bits": 8, "mode": mode} if path == "lm_head" and mode == "affine" else True
        )

    model, config = quantize_model(model, dict(TINY_LLAMA), group, 4, mode=mode, quant_predicate=predicate)
    save_model(folder, model)
    # no index: the count must come from the shard headers, not from mlx_lm's index metadata
    (folder / "model.safetensors.index.json").unlink()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(json.dumps(QWEN_TEMPLATE))
    return get_total_parameters(model)


@pytest.mark.parametrize("mode", ["affine", "mxfp4"])
def test_quantized_count_matches_mlx_lm(tmp_path: Path, mode: str) -> None:
    expected = build_quantized_llama(tmp_path, mode)
    caps = read_local_capabilities(tmp_path, repo_id="local/tiny")
    assert caps.problems == []
    assert (caps.parameters, caps.parameters_estimated) == (expected, False)
    assert (caps.quant_bits, caps.quant_mode) == (4, mode)
    assert (caps.tools, caps.thinking, caps.context_length) == (True, True, 2048)
    assert caps.weight_bytes == (tmp_path / "model.safetensors").stat().st_size
    assert caps.size_bytes == sum(p.stat().st_size for p in tmp_path.iterdir())


def write_shards(folder: Path) -> int:
    """Two shards by hand: an unquantized embedding and norm, a 4-bit layer and an 8-bit one
    (uint32 packed weights + scales + biases), and a linear layer's plain `.bias`."""
    w4, s4, b4 = (np.asarray(a) for a in mx.quantize(mx.zeros((32, 128)), group_size=64, bits=4))
    w8, s8, b8 = (np.asarray(a) for a in mx.quantize(mx.zeros((16, 64)), group_size=64, bits=8))
    save_file(
        {"embed.weight": np.zeros((100, 64), np.float16), "norm.weight": np.ones(64, np.float16)},
        str(folder / "model-00001-of-00002.safetensors"),
    )
    save_file(
        {"q4.weight": w4, "q4.scales": s4, "q4.biases": b4, "q4.bias": np.zeros(32, np.float32),
         "q8.weight": w8, "q8.scales": s8, "q8.biases": b8},
        str(folder / "model-00002-of-00002.safetensors"),
    )  # fmt: skip
    config = {
        "model_type": "llama",
        "quantization": {"group_size": 64, "bits": 4, "q8": {"group_size": 64, "bits": 8}},
    }
    (folder / "config.json").write_text(json.dumps(config))
    return 100 * 64 + 64 + 32 * 128 + 32 + 16 * 64


def test_hand_written_shards_count_logical_parameters(tmp_path: Path) -> None:
    expected = write_shards(tmp_path)
    assert read_local_capabilities(tmp_path).parameters == expected


def test_bits_recovered_from_shapes_when_config_has_no_quantization(tmp_path: Path) -> None:
    expected = write_shards(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    caps = read_local_capabilities(tmp_path)
    assert caps.parameters == expected and caps.quant_bits is None


def test_hf_snapshot_of_symlinks_counts_blob_sizes(tmp_path: Path) -> None:
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / ("a" * 40)
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    expected = write_shards(blobs)
    for blob in blobs.iterdir():
        (snapshot / blob.name).symlink_to(os.path.relpath(blob, snapshot))
    caps = read_local_capabilities(snapshot, repo_id="org/model")
    assert caps.parameters == expected
    assert caps.size_bytes == sum(p.stat().st_size for p in blobs.iterdir())


def header_only_copy(source: Path, target: Path, *, sparse_size: int | None = None) -> None:
    """Keep only the 8-byte length + JSON header; optionally extend with a sparse hole so the file
    claims `sparse_size` bytes of weights that would take seconds to read."""
    data = source.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    with target.open("wb") as f:
        f.write(data[:header_end])
        if sparse_size:
            f.truncate(sparse_size)


def test_weights_are_never_read(tmp_path: Path) -> None:
    built, model = tmp_path / "built", tmp_path / "model"
    built.mkdir()
    model.mkdir()
    expected = write_shards(built)
    (model / "config.json").write_bytes((built / "config.json").read_bytes())
    header_only_copy(built / "model-00001-of-00002.safetensors", model / "model-00001-of-00002.safetensors")
    header_only_copy(
        built / "model-00002-of-00002.safetensors",
        model / "model-00002-of-00002.safetensors",
        sparse_size=8 << 30,
    )
    started = time.perf_counter()
    caps = read_local_capabilities(model)
    elapsed = time.perf_counter() - started
    assert caps.parameters == expected and caps.problems == []
    assert caps.weight_bytes > 8 << 30  # the sparse shard's claimed size counts
    assert elapsed < 1.0  # reading 8 GiB of zeros would take far longer


def test_many_tensors_are_counted_quickly(tmp_path: Path) -> None:
    # a 30,000-tensor header, like a large MoE shard
    tensors = {f"layers.{i}.w": np.zeros((2, 3), np.float16) for i in range(30_000)}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text("{}")
    started = time.perf_counter()
    assert read_local_capabilities(tmp_path).parameters == 180_000
    assert time.perf_counter() - started < 2.0


def test_original_gpt_oss_blocks_hold_two_parameters_per_byte(tmp_path: Path) -> None:
    tensors = {
        "experts.gate_up_proj_blocks": np.zeros((2, 8, 3, 16), np.uint8),
        "experts.gate_up_proj_scales": np.zeros((2, 8, 3), np.uint8),
        "norm.weight": np.zeros(8, np.float16),
    }
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"quantization_config": {"quant_method": "mxfp4"}}')
    assert read_local_capabilities(tmp_path).parameters == 2 * 8 * 3 * 16 * 2 + 8


def test_corrupt_shard_falls_back_to_an_estimate_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({**TINY_LLAMA, "quantization": {"bits": 4, "group_size": 64}})
    )
    (tmp_path / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
    caps = read_local_capabilities(tmp_path)
    assert caps.parameters_estimated is True and caps.parameters is not None
    assert caps.problems == [
        "Could not read weights header: model.safetensors: header length 1000000000000 is not plausible"
    ]


def test_broken_link_is_reported(tmp_path: Path) -> None:
    write_shards(tmp_path)
    (tmp_path / "model-00003-of-00003.safetensors").symlink_to(tmp_path / "missing-blob")
    caps = read_local_capabilities(tmp_path)
    assert any("model-00003-of-00003.safetensors is a broken link" in p for p in caps.problems)
    assert caps.parameters_estimated is True  # a partial sum would be a confident wrong number
