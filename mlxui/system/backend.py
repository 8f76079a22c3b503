"""Which MLX device this machine runs models on (shown in the footer and About panel)."""

from __future__ import annotations

import functools
import importlib.metadata


@functools.cache
def detect_backend() -> str:
    """'Metal', 'CUDA' or 'CPU' — the device mlx_lm would use here; 'unavailable' if mlx is missing."""
    try:
        import mlx.core as mx
    except ImportError:
        return "unavailable"
    if mx.metal.is_available():
        return "Metal"
    cuda = getattr(mx, "cuda", None)
    if cuda is not None and cuda.is_available():
        return "CUDA"
    return "CPU"


def package_versions() -> dict[str, str]:
    """Versions of the libraries a bug report needs; 'not installed' where one is missing."""
    names = ["mlxui", "mlx", "mlx-lm", "mlx-vlm", "huggingface_hub", "nicegui"]
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
