"""Parameter counts of models with tied embeddings: the input embeddings double as the output
head, so the vocab x hidden matrix is counted once (SmolLM2-135M is 135M, not 163M)."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx

from mlxui.hub.capabilities import parse_capabilities, read_local_capabilities

# HuggingFaceTB/SmolLM2-135M's shape; its exact count is 134,515,008.
SMOLLM2_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_hidden_layers": 30,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


def test_smollm2_from_its_config_is_135m_not_163m() -> None:
    caps = parse_capabilities({"config.json": json.dumps(SMOLLM2_CONFIG)})
    assert caps.parameters == 134_515_008
    assert caps.parameters_label == "~135M"
    assert "~135M" in caps.badges()


def test_an_untied_head_is_counted_twice() -> None:
    caps = parse_capabilities({"config.json": json.dumps({**SMOLLM2_CONFIG, "tie_word_embeddings": False})})
    assert caps.parameters_label == "~163M"


def test_a_stored_head_of_a_tied_model_is_not_counted(tmp_path: Path) -> None:
    """Some conversions keep `lm_head.weight` although the config ties it; mlx_lm drops it on load."""
    vocab, hidden = 1000, 64
    weights = {
        "model.embed_tokens.weight": mx.zeros((vocab, hidden)),
        "model.layers.0.mlp.up_proj.weight": mx.zeros((128, hidden)),
        "model.norm.weight": mx.zeros((hidden,)),
        "lm_head.weight": mx.zeros((vocab, hidden)),
    }
    mx.save_safetensors(str(tmp_path / "model.safetensors"), weights)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
              "vocab_size": vocab, "num_hidden_layers": 1, "tie_word_embeddings": True}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    tied = read_local_capabilities(tmp_path)
    assert tied.parameters == vocab * hidden + 128 * hidden + hidden
    assert tied.parameters_estimated is False
    (tmp_path / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    assert read_local_capabilities(tmp_path).parameters == 2 * vocab * hidden + 128 * hidden + hidden


def test_a_hub_card_with_an_8_bit_embedding_next_to_4_bit_layers_is_135m() -> None:
    """The real SmolLM2 MLX conversion: 4-bit layers, an 8-bit embedding. The Hub's packed U32
    counts read at 4 bits would double the embedding (~163M); the dimensions count it right."""
    config = {
        **SMOLLM2_CONFIG,
        "quantization": {"group_size": 32, "bits": 4, "model.embed_tokens": {"group_size": 32, "bits": 8}},
    }
    counts = {"U32": 17_694_720, "F16": 2_000_000, "F32": 34_560}  # shaped like the Hub's safetensors info
    caps = parse_capabilities({"config.json": json.dumps(config)}, dtype_counts=counts)
    assert caps.parameters == 134_515_008
    assert caps.parameters_label == "~135M"
