"""mlxui: the way to run local MLX language models."""

__version__ = "0.1.0"
