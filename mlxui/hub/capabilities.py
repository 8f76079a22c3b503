"""What a model can do, read from its small files (config, tokenizer config, chat template).

Callers pass file contents (fetched from the Hub) or a local folder; this module does no network
I/O and never raises on a bad file: what could not be read becomes a line in `problems`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mlxui.hub import capability_rules as rules
from mlxui.hub.safetensors_header import count_folder_parameters

# The files worth fetching from the Hub to fill a model card: all small (kilobytes), unlike
# tokenizer.json (megabytes) or the weights.
SMALL_FILES: tuple[str, ...] = (
    "config.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "model.safetensors.index.json",
    "generation_config.json",
    *rules.SENTENCE_TRANSFORMERS_FILES,
)

# The JSON files whose contents matter; the sentence-transformers files only need to exist.
_PARSED_FILES = (
    "config.json",
    "tokenizer_config.json",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "model.safetensors.index.json",
)

# Local files above this size are not "small files" and are skipped rather than read whole.
_MAX_SMALL_FILE = 16 * 1024 * 1024


@dataclass
class Capabilities:
    """A model card's facts. JSON-safe via to_dict/from_dict so it can be cached in the DB."""

    repo_id: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    parameters: int | None = None
    parameters_estimated: bool = False
    quant_bits: int | None = None
    quant_group_size: int | None = None
    quant_mode: str | None = None
    context_length: int | None = None
    vision: bool = False
    tools: bool = False
    thinking: bool = False
    embeddings: bool = False
    audio: bool = False
    size_bytes: int | None = None  # every file of the repo/folder: what a download costs
    weight_bytes: int | None = None  # the *.safetensors files: what loading costs
    dtype: str | None = None  # unquantized weight dtype, e.g. "bfloat16"
    # shape numbers of the language model, for the KV-cache estimate
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capabilities:
        """Tolerates rows cached by older versions: unknown keys are dropped, missing ones default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def badges(self) -> list[str]:
        """Short labels for a model card, most distinctive first."""
        flags = [
            ("Vision", self.vision),
            ("Audio", self.audio),
            ("Embeddings", self.embeddings),
            ("Tools", self.tools),
            ("Thinking", self.thinking),
        ]
        out = [label for label, on in flags if on]
        if self.quant_bits or self.quant_mode:
            out.append(format_quant(self.quant_bits, self.quant_mode))
        if self.context_length:
            out.append(f"{format_context(self.context_length)} ctx")
        if self.parameters_label:
            out.append(self.parameters_label)
        return out

    @property
    def parameters_label(self) -> str | None:
        """The parameter count as every view shows it (card, Local list, details): "135M", or
        "~135M" when estimated; None when unknown. The one place that formats it."""
        if not self.parameters:
            return None
        return ("~" if self.parameters_estimated else "") + format_parameters(self.parameters)


def format_quant(bits: int | None, mode: str | None) -> str:
    """ "4-bit" for MLX's default affine scheme, the format's name (e.g. "MXFP4") otherwise."""
    if mode in (None, "affine"):
        return f"{bits}-bit"
    if mode in ("mxfp4", "nvfp4", "mxfp8", "fp8"):
        return mode.upper()
    return f"{bits}-bit {mode}" if bits else mode


def format_context(tokens: int) -> str:
    """Context lengths as people say them: 40960 -> "40K", 131072 -> "128K", 1048576 -> "1M"."""
    if tokens >= 1024 * 1024 and tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}M"
    if tokens >= 1024 and tokens % 1024 == 0:
        return f"{tokens // 1024}K"
    if tokens >= 1000:
        return f"{round(tokens / 1000)}K"
    return str(tokens)


def format_parameters(count: int) -> str:
    """8_190_735_360 -> "8.2B", 20_914_757_184 -> "21B", 494_032_768 -> "494M"."""
    if count >= 10**12:
        return f"{count / 10**12:.1f}".removesuffix(".0") + "T"
    if count >= 10 * 10**9:
        return f"{round(count / 10**9)}B"
    if count >= 10**9:
        return f"{count / 10**9:.1f}".removesuffix(".0") + "B"
    if count >= 10**6:
        return f"{round(count / 10**6)}M"
    return f"{round(count / 10**3)}K"


def parse_capabilities(
    files: dict[str, str | bytes],
    *,
    repo_id: str | None = None,
    file_sizes: dict[str, int] | None = None,
    dtype_counts: dict[str, int] | None = None,
) -> Capabilities:
    """Capabilities from the contents of SMALL_FILES (any may be missing or malformed).

    `file_sizes` maps every file of the repo to its size (Hub model info with blobs, or a
    folder listing); `dtype_counts` is the Hub's `safetensors.parameters` ({"BF16": n, "U32": m}).
    """
    problems: list[str] = []
    docs = {name: _load_json(files, name, problems) for name in _PARSED_FILES}
    config, tok = docs["config.json"], docs["tokenizer_config.json"]
    if "config.json" not in files:
        problems.append("config.json is missing: architecture, context and size are unknown")
    architectures = rules.architectures(config)
    caps = Capabilities(repo_id=repo_id, architecture=architectures[0] if architectures else None)
    caps.model_type = rules.model_type(config)
    _fill_shape(caps, config)
    caps.context_length = rules.context_length(config, tok)
    caps.quant_bits, caps.quant_group_size, caps.quant_mode = rules.quantization(config)
    jinja = _text(files, "chat_template.jinja", problems)
    template = rules.chat_template_text(tok, jinja, docs["chat_template.json"], docs["processor_config.json"])
    processors = [docs["preprocessor_config.json"], docs["processor_config.json"]]
    caps.tools = rules.has_tools(template)
    caps.thinking = rules.has_thinking(template, rules.added_tokens(tok))
    caps.audio = rules.has_audio(config, caps.architecture, processors)
    # an audio feature extractor is not an image processor
    caps.vision = rules.has_vision(config, caps.architecture, [] if caps.audio else processors)
    present = {Path(name).name for name in [*files, *(file_sizes or {})]}
    caps.embeddings = rules.is_embeddings(config, architectures, present)
    _fill_sizes(caps, file_sizes, docs["model.safetensors.index.json"])
    _fill_parameters(caps, config, docs["model.safetensors.index.json"], dtype_counts)
    caps.problems = problems
    return caps


def read_local_capabilities(folder: Path, repo_id: str | None = None) -> Capabilities:
    """Capabilities of a downloaded model folder (an HF snapshot of symlinks is fine), with the
    exact parameter count from the safetensors headers."""
    folder = Path(folder)
    problems: list[str] = []
    files: dict[str, str | bytes] = {}
    for name in SMALL_FILES:
        path = folder / name
        try:
            if path.is_file() and path.stat().st_size <= _MAX_SMALL_FILE:
                files[name] = path.read_bytes()
        except OSError as err:
            problems.append(f"Could not read {name}: {err.strerror or err}")
    sizes = _folder_sizes(folder, problems)
    caps = parse_capabilities(files, repo_id=repo_id, file_sizes=sizes)
    config = _load_json(files, "config.json", [])
    count, header_problems = count_folder_parameters(
        folder, rules.quantization_section(config), tied=rules.tied_embeddings(config, default=False)
    )
    if count is not None:
        caps.parameters, caps.parameters_estimated = count, False
    caps.problems = [*problems, *caps.problems, *header_problems]
    return caps


def _load_json(files: dict[str, str | bytes], name: str, problems: list[str]) -> dict[str, Any]:
    """A JSON object from `files`, or {} with a problem noted when it is unreadable."""
    text = _text(files, name, problems)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        problems.append(f"{name} is not valid JSON ({err.msg} at line {err.lineno})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{name} is not a JSON object")
        return {}
    return data


def _text(files: dict[str, str | bytes], name: str, problems: list[str]) -> str | None:
    raw = files.get(name)
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{name} is not UTF-8 text")
            return None
    return raw if isinstance(raw, str) else None


def _fill_shape(caps: Capabilities, config: dict[str, Any]) -> None:
    caps.num_hidden_layers = rules.first_int(config, "num_hidden_layers", "n_layer", "num_layers")
    caps.num_attention_heads = rules.first_int(config, "num_attention_heads", "n_head")
    caps.num_key_value_heads = rules.first_int(config, "num_key_value_heads", "num_kv_heads")
    caps.hidden_size = rules.first_int(config, "hidden_size", "d_model", "n_embd")
    caps.head_dim = rules.first_int(config, "head_dim")
    if caps.head_dim is None and caps.hidden_size and caps.num_attention_heads:
        caps.head_dim = caps.hidden_size // caps.num_attention_heads
    caps.vocab_size = rules.first_int(config, "vocab_size")
    for view in rules.lm_views(config):
        dtype = view.get("torch_dtype") or view.get("dtype")
        if isinstance(dtype, str):
            caps.dtype = dtype
            break


def _fill_sizes(caps: Capabilities, sizes: dict[str, int] | None, index: dict[str, Any]) -> None:
    if sizes:
        caps.size_bytes = sum(sizes.values())
        weights = [size for name, size in sizes.items() if name.endswith(".safetensors")]
        caps.weight_bytes = sum(weights) if weights else None
    if caps.weight_bytes is None and isinstance(index.get("metadata"), dict):
        caps.weight_bytes = rules.as_int(index["metadata"].get("total_size"))


def _fill_parameters(
    caps: Capabilities, config: dict[str, Any], index: dict[str, Any], dtype_counts: dict[str, int] | None
) -> None:
    """Best available count: the index's exact total (mlx_lm and recent transformers write it),
    then the Hub's per-dtype counts, then weight bytes / bits, then the config's dimensions."""
    meta = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
    exact = rules.as_int(meta.get("total_parameters"))
    if exact:
        caps.parameters, caps.parameters_estimated = exact, False
        return
    if dtype_counts:
        # Layers quantized with other bits than the default (SmolLM2's 8-bit embedding next to 4-bit
        # layers) make the packed counts ambiguous: the config's dimensions count those exactly.
        overrides = any(isinstance(v, dict) for v in rules.quantization_section(config).values())
        from_dims = rules.parameters_from_dims(config) if overrides else None
        caps.parameters = from_dims or rules.parameters_from_dtype_counts(
            dtype_counts, caps.quant_bits, caps.quant_group_size, caps.quant_mode
        )
        caps.parameters_estimated = overrides
        return
    if caps.weight_bytes:
        bpp = rules.bits_per_parameter(caps.quant_bits, caps.quant_group_size, caps.quant_mode, caps.dtype)
        caps.parameters = round(caps.weight_bytes * 8 / bpp)
    else:
        caps.parameters = rules.parameters_from_dims(config)
    caps.parameters_estimated = caps.parameters is not None


def _folder_sizes(folder: Path, problems: list[str]) -> dict[str, int]:
    """Relative path -> size of every file, following symlinks (HF snapshots link to blobs)."""
    sizes: dict[str, int] = {}
    try:
        paths = sorted(folder.rglob("*"))
    except OSError as err:
        problems.append(f"Could not list {folder}: {err.strerror or err}")
        return sizes
    for path in paths:
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        try:
            if path.is_file():
                sizes[rel.as_posix()] = path.stat().st_size
            elif path.is_symlink():
                problems.append(f"{rel.as_posix()} is a broken link (incomplete download?)")
        except OSError as err:
            problems.append(f"Could not stat {rel.as_posix()}: {err.strerror or err}")
    return sizes
