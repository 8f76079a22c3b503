"""Parameter counts from safetensors headers, without touching the weights.

A safetensors file starts with an 8-byte little-endian header length and a JSON header that names
every tensor with its dtype and shape. That is all we need to count parameters exactly, so a 40 GB
model is counted by reading a few hundred kilobytes.
"""

from __future__ import annotations

import json
from math import prod
from pathlib import Path
from typing import Any

# The format caps headers at 100 MB; anything larger is a corrupt file, not a model.
MAX_HEADER_BYTES = 100 * 1024 * 1024

# group size each MLX quantization mode uses when the config does not say (mlx_lm defaults)
MODE_GROUP_SIZE = {"affine": 64, "mxfp4": 32, "nvfp4": 16, "mxfp8": 32}

# tensors that belong to an MLX quantized layer but are not parameters of the original model
_QUANT_AUX = {"scales", "biases", "global_scale"}


class SafetensorsHeaderError(ValueError):
    """The file is not a readable safetensors file."""


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """Tensor name -> {"dtype", "shape", "data_offsets"}; reads only the header bytes."""
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise SafetensorsHeaderError(f"{path.name}: file too short to be safetensors")
        length = int.from_bytes(prefix, "little")
        if length > MAX_HEADER_BYTES:
            raise SafetensorsHeaderError(f"{path.name}: header length {length} is not plausible")
        raw = f.read(length)
    if len(raw) < length:
        raise SafetensorsHeaderError(f"{path.name}: header is cut off")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafetensorsHeaderError(f"{path.name}: header is not JSON ({err})") from err
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(f"{path.name}: header is not a JSON object")
    header.pop("__metadata__", None)
    for name, info in header.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise SafetensorsHeaderError(f"{path.name}: tensor {name!r} has no shape")
    return header


def count_parameters(
    tensors: dict[str, dict[str, Any]], quantization: dict[str, Any] | None, *, tied: bool = False
) -> int:
    """Logical parameter count of all tensors (all shards merged into one dict).

    MLX stores a quantized layer as a uint32 `weight` holding 32/bits values per element plus
    `scales` (and `biases` for affine); the original layer had weight.size * 32 / bits
    parameters and no scales, which is what mlx_lm's own count reports too.
    With `tied` (the config's `tie_word_embeddings`), a stored `lm_head` is a copy of the
    embeddings that mlx_lm drops when it loads the model: it is not counted twice.
    """
    quant = quantization or {}
    quantized = {
        name.removesuffix(".weight")
        for name, info in tensors.items()
        if name.endswith(".weight")
        and info.get("dtype") == "U32"
        and name.removesuffix(".weight") + ".scales" in tensors
    }
    total = 0
    for name, info in tensors.items():
        module, _, leaf = name.rpartition(".")
        if tied and module.rpartition(".")[2] == "lm_head":
            continue
        size = prod(info["shape"])
        if module in quantized:
            if leaf in _QUANT_AUX:
                continue
            if leaf == "weight":
                size = size * 32 // _bits_for(module, tensors, quant)
        total += size + _openai_mxfp4_extra(name, size, tensors)
    return total


def _bits_for(module: str, tensors: dict[str, dict[str, Any]], quant: dict[str, Any]) -> int:
    """Bits of one quantized layer: its per-layer config entry, else the default, else the shapes."""
    layer = quant.get(module)
    for source in (layer if isinstance(layer, dict) else {}, quant):
        if _positive_int(source.get("bits")):
            return source["bits"]
    # No config: recover bits from shapes, as mlx_lm does for layers its config does not name.
    mode = quant.get("mode") if isinstance(quant.get("mode"), str) else "affine"
    group = quant["group_size"] if _positive_int(quant.get("group_size")) else MODE_GROUP_SIZE.get(mode, 64)
    packed = int(tensors[module + ".weight"]["shape"][-1])
    in_features = int(tensors[module + ".scales"]["shape"][-1]) * group
    return max(1, packed * 32 // in_features) if in_features else 4


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _openai_mxfp4_extra(name: str, size: int, tensors: dict[str, dict[str, Any]]) -> int:
    """Correction for the original gpt-oss layout: `*_blocks` bytes hold two 4-bit values each
    and `*_scales` are per-block exponents, not parameters."""
    if name.endswith("_blocks") and name.removesuffix("_blocks") + "_scales" in tensors:
        return size  # each byte is two parameters: count it twice
    if name.endswith("_scales") and name.removesuffix("_scales") + "_blocks" in tensors:
        return -size
    return 0


def count_folder_parameters(
    folder: Path, quantization: dict[str, Any] | None, *, tied: bool = False
) -> tuple[int | None, list[str]]:
    """Exact parameter count over every *.safetensors shard in `folder`, plus problems found.

    Returns None when there are no shards or any shard is unreadable: a partial sum would be a
    confidently wrong number.
    """
    shards = sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))
    if not shards:
        return None, []
    tensors: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for shard in shards:
        try:
            tensors.update(read_safetensors_header(shard))
        except (OSError, SafetensorsHeaderError) as err:
            problems.append(f"Could not read weights header: {err}")
    if problems:
        return None, problems
    return count_parameters(tensors, quantization, tied=tied), []
