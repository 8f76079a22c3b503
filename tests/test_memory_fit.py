"""Memory estimates and the fits / tight / won't-fit verdict, on numbers worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlxui.hub.capabilities import Capabilities, parse_capabilities
from mlxui.hub.memory import (
    MemoryEstimate,
    estimate_memory,
    fit,
    fit_on_this_machine,
    kv_cache_bytes,
    system_memory,
    usable_ceiling,
)

GiB = 1024**3
MiB = 1024**2
SHAPES = Path(__file__).parent / "data" / "model_shapes"


def shape(name: str) -> Capabilities:
    return parse_capabilities({p.name: p.read_text() for p in (SHAPES / name).iterdir()})


def test_qwen3_8b_estimate_by_hand() -> None:
    caps = shape("qwen3_8b_4bit")  # 36 layers, 8 KV heads of 128, context 40960 -> 8192 by default
    est = estimate_memory(caps, weight_bytes=4_607_219_712)
    kv = 2 * 36 * 8 * 128 * 8192 * 2
    assert kv == 1_207_959_552  # 1.125 GiB
    assert (est.context_tokens, est.kv_cache_bytes) == (8192, kv)
    assert est.overhead_bytes == 512 * MiB + round(4_607_219_712 * 0.05)
    assert est.total_bytes == 4_607_219_712 + kv + est.overhead_bytes
    assert est.notes == [] and est.weights_known


def test_full_context_of_llama_31_costs_16_gib_of_cache() -> None:
    caps = shape("llama31_8b_instruct_4bit")
    est = estimate_memory(caps, weight_bytes=4_517_150_720, context_tokens=131072)
    assert est.kv_cache_bytes == 2 * 32 * 8 * 128 * 131072 * 2 == 16 * GiB


def test_vlm_cache_uses_the_text_config() -> None:
    caps = shape("gemma3_4b_it_4bit")  # numbers live under text_config
    assert kv_cache_bytes(caps, 1000) == 2 * 34 * 4 * 256 * 1000 * 2


def test_head_dim_defaults_to_hidden_over_heads() -> None:
    caps = Capabilities(num_hidden_layers=2, num_attention_heads=4, hidden_size=64)  # no GQA, no head_dim
    assert kv_cache_bytes(caps, 10) == 2 * 2 * 4 * 16 * 10 * 2


def test_short_context_model_is_charged_its_own_context() -> None:
    caps = Capabilities(context_length=2048, num_hidden_layers=1, num_key_value_heads=1, head_dim=8)
    assert estimate_memory(caps, weight_bytes=0).context_tokens == 2048


def test_embeddings_model_has_no_cache() -> None:
    est = estimate_memory(shape("bge_small_embeddings"), weight_bytes=133 * MiB)
    assert est.kv_cache_bytes == 0 and est.notes == []


def test_weights_from_parameters_when_size_is_unknown() -> None:
    caps = shape("qwen3_8b_4bit")
    caps.weight_bytes = None
    est = estimate_memory(caps)
    # 4-bit affine with group 64 stores 4 + 2*16/64 = 4.5 bits per parameter
    assert est.weights_bytes == round(8_190_735_360 * 4.5 / 8)
    assert est.notes == ["Weight size estimated from the parameter count"]


def test_unknown_weights_give_no_verdict_rather_than_a_false_fits() -> None:
    est, verdict = fit_on_this_machine(Capabilities(repo_id="x/y"))
    assert verdict is None and not est.weights_known
    assert "Weight size unknown" in est.notes
    assert "KV cache unknown: the config does not give layers and heads" in est.notes


LINUX_24 = dict(total_bytes=24 * GiB, platform="linux")
MAC_32 = dict(total_bytes=32 * GiB, platform="darwin")


@pytest.mark.parametrize(
    ("need", "machine", "available", "verdict"),
    [
        (10 * GiB, LINUX_24, 16 * GiB, "fits"),
        (18 * GiB, LINUX_24, 16 * GiB, "tight"),  # more than is free right now
        (21 * GiB, LINUX_24, 23 * GiB, "tight"),  # free, but above 85% of RAM
        (20 * GiB, LINUX_24, 23 * GiB, "fits"),  # 83% of RAM and free
        (24 * GiB, LINUX_24, 24 * GiB, "tight"),  # exactly all of RAM
        (25 * GiB, LINUX_24, 24 * GiB, "wont_fit"),
        (16 * GiB, MAC_32, 30 * GiB, "fits"),
        (21 * GiB, MAC_32, 30 * GiB, "tight"),  # GPU ceiling is 24 GiB; 85% of it is 20.4 GiB
        (25 * GiB, MAC_32, 30 * GiB, "wont_fit"),  # free RAM does not lift the GPU's 75% limit
        (12 * GiB, MAC_32, 10 * GiB, "tight"),
    ],
)
def test_fit_thresholds(need: int, machine: dict, available: int, verdict: str) -> None:
    assert fit(need, available_bytes=available, **machine) == verdict


def test_macos_ceiling_is_three_quarters_of_ram() -> None:
    assert usable_ceiling(64 * GiB, platform="darwin") == 48 * GiB
    assert usable_ceiling(64 * GiB, platform="linux") == 64 * GiB


def test_this_machine_verdicts() -> None:
    small = Capabilities(num_hidden_layers=2, num_key_value_heads=2, head_dim=16, context_length=2048)
    _, verdict = fit_on_this_machine(small, weight_bytes=1 * MiB)
    assert verdict == "fits"
    huge = shape("gpt_oss_20b_mxfp4")
    est, verdict = fit_on_this_machine(huge, weight_bytes=4096 * GiB)
    assert verdict == "wont_fit" and isinstance(est, MemoryEstimate)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares with /proc/meminfo")
def test_system_memory_matches_the_kernel() -> None:
    total, available = system_memory()
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert total == int(meminfo["MemTotal"].split()[0]) * 1024
    assert 0 < available <= total
