"""Will a model fit in memory? An estimate of what serving it takes, and a verdict against RAM.

Estimate = weights + KV cache for a default context + runtime overhead.
- Weights: the safetensors bytes (MLX loads them as stored, quantized or not).
- KV cache: 2 (keys and values) x layers x kv_heads x head_dim x context x 2 bytes (fp16/bf16,
  mlx_lm's default cache dtype for 16-bit models). Sliding-window layers (Gemma 3, gpt-oss) are
  counted as full attention: an upper bound, so we never promise a fit that is not there.
- Default context: min(model context, 8192). Longer chats grow the cache; 8K tokens is a long
  conversation, and charging a 128K-context model for 128K tokens would mark almost everything
  "won't fit" for a cache that only fills if the user pastes a book.
- Overhead: 512 MiB for Python, MLX and the server, plus 5% of the weights for activations and
  temporary buffers during prompt processing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import psutil

from mlxui.hub.capabilities import Capabilities
from mlxui.hub.capability_rules import bits_per_parameter

Fit = Literal["fits", "tight", "wont_fit"]

DEFAULT_CONTEXT = 8192
KV_BYTES_PER_ELEMENT = 2
RUNTIME_OVERHEAD_BYTES = 512 * 1024**2
ACTIVATION_FRACTION = 0.05

# macOS lets the GPU wire about 75% of unified memory by default (Metal's recommended working
# set; `sysctl iogpu.wired_limit_mb` raises it). Beyond that, loading fails or thrashes.
MACOS_GPU_FRACTION = 0.75
# Within 15% of the ceiling there is no room left for a longer chat or other apps.
TIGHT_MARGIN = 0.15


@dataclass
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    context_tokens: int
    notes: list[str] = field(default_factory=list)  # what was unknown and how it was guessed
    weights_known: bool = True  # False: no size and no parameter count; the total means nothing

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes


def estimate_memory(
    caps: Capabilities, *, weight_bytes: int | None = None, context_tokens: int | None = None
) -> MemoryEstimate:
    """Bytes needed to serve the model with `context_tokens` of context (default: see module doc).

    `weight_bytes` defaults to the model's safetensors size, then to parameters x bits.
    """
    notes: list[str] = []
    weights = weight_bytes if weight_bytes is not None else _weights_from_caps(caps, notes)
    context = context_tokens if context_tokens is not None else default_context(caps)
    kv = kv_cache_bytes(caps, context)
    if kv is None:
        kv = 0
        if not caps.embeddings:
            notes.append("KV cache unknown: the config does not give layers and heads")
    overhead = RUNTIME_OVERHEAD_BYTES + round(weights * ACTIVATION_FRACTION)
    known = weight_bytes is not None or caps.weight_bytes is not None or bool(caps.parameters)
    return MemoryEstimate(weights, kv, overhead, context, notes, weights_known=known)


def default_context(caps: Capabilities) -> int:
    return min(caps.context_length or DEFAULT_CONTEXT, DEFAULT_CONTEXT)


def kv_cache_bytes(caps: Capabilities, context_tokens: int) -> int | None:
    """2 x layers x kv_heads x head_dim x tokens x 2 bytes; None when the shape is unknown.
    Encoder-only embedding models keep no cache."""
    if caps.embeddings:
        return 0
    heads = caps.num_key_value_heads or caps.num_attention_heads
    head_dim = caps.head_dim
    if head_dim is None and caps.hidden_size and caps.num_attention_heads:
        head_dim = caps.hidden_size // caps.num_attention_heads
    if not (caps.num_hidden_layers and heads and head_dim):
        return None
    return 2 * caps.num_hidden_layers * heads * head_dim * context_tokens * KV_BYTES_PER_ELEMENT


def fit(estimate_bytes: int, *, total_bytes: int, available_bytes: int, platform: str | None = None) -> Fit:
    """Verdict for a model needing `estimate_bytes` on a machine with this much RAM.

    ceiling = 75% of RAM on macOS (the GPU's default limit), all of RAM elsewhere.
    - "wont_fit": more than the ceiling; no amount of closing apps helps.
    - "tight": fits the ceiling but not what is free right now (other apps must give memory
      back, or the system swaps), or uses more than 85% of the ceiling.
    - "fits": otherwise.
    """
    ceiling = usable_ceiling(total_bytes, platform=platform)
    if estimate_bytes > ceiling:
        return "wont_fit"
    if estimate_bytes > available_bytes or estimate_bytes > ceiling * (1 - TIGHT_MARGIN):
        return "tight"
    return "fits"


def usable_ceiling(total_bytes: int, *, platform: str | None = None) -> int:
    """The most memory a model may use on this platform (see `fit`)."""
    if (platform or sys.platform) == "darwin":
        return int(total_bytes * MACOS_GPU_FRACTION)
    return total_bytes


def system_memory() -> tuple[int, int]:
    """(total, available) RAM in bytes."""
    vm = psutil.virtual_memory()
    return vm.total, vm.available


def fit_on_this_machine(
    caps: Capabilities, *, weight_bytes: int | None = None, context_tokens: int | None = None
) -> tuple[MemoryEstimate, Fit | None]:
    """The estimate and its verdict against this machine's memory right now; the verdict is None
    (show "n/a") when the weight size is unknown, rather than a "fits" based on zero bytes."""
    estimate = estimate_memory(caps, weight_bytes=weight_bytes, context_tokens=context_tokens)
    if not estimate.weights_known:
        return estimate, None
    total, available = system_memory()
    return estimate, fit(estimate.total_bytes, total_bytes=total, available_bytes=available)


def _weights_from_caps(caps: Capabilities, notes: list[str]) -> int:
    if caps.weight_bytes is not None:
        return caps.weight_bytes
    if caps.parameters:
        bpp = bits_per_parameter(caps.quant_bits, caps.quant_group_size, caps.quant_mode, caps.dtype)
        notes.append("Weight size estimated from the parameter count")
        return round(caps.parameters * bpp / 8)
    notes.append("Weight size unknown")
    return 0
