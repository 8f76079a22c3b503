"""Tiny MLX model folders built at test time (never downloaded).

Scripted models answer a fixed reply whatever the prompt, so tests can assert exact text:
one llama layer whose attention and MLP outputs are zero, so the residual stream is the
token's own embedding (identity, hidden size = vocab size), and an `lm_head` that maps each
token to the next token of the script. Greedy decoding then walks the script and stops at EOS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

EOS = "<|end|>"
ASSISTANT = "<|assistant|>"
SPECIALS = ["<unk>", EOS, "<|system|>", "<|user|>", ASSISTANT, "<|tool|>"]
DEFAULT_EXTRA_VOCAB = ("hi", "hello", "Hi", "Hello", "how", "are", "you", "?", "!", ".", ",")

PLAIN_TOKENS = ["Hello", " there", "!", " How", " can", " I", " help", "?"]
PLAIN_REPLY = "Hello there! How can I help?"
THINK_TOKENS = ["<think>", "Let", " me", " think", ".", "</think>", "The", " answer", " is", " 42", "!"]
THINK_REASONING = "Let me think."  # what mlx_lm.server sends in delta `reasoning`
THINK_CONTENT = "The answer is 42!"  # what it sends in delta `content`
THINK_TEXT_TOKENS = ["<think>Let", " me", " see", ".</think>", "Four", "."]
THINK_TEXT_REPLY = "<think>Let me see.</think>Four."  # arrives whole in `content`
ENDLESS_TOKENS = ["la", " la", " lo "]
ENDLESS_CYCLE = "la la lo "  # the reply is this cycle repeated, cut at max_tokens

# Renders any OpenAI-style conversation; string, list-of-parts or null content; ignores
# `tools` / `enable_thinking`. It always ends with <|assistant|>, whose lm_head row starts the script.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- elif message['content'] -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] in ['image', 'image_url', 'input_image'] -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)

# A scripted logit: the target token beats every other by this margin, so the script holds
# even when a client asks for temperature 1.0.
_SCRIPT_LOGIT = 60.0


def build_scripted(
    dest: Path,
    reply_tokens: list[str],
    *,
    think_tokens: bool = False,
    endless: bool = False,
    extra_vocab: tuple[str, ...] | list[str] = DEFAULT_EXTRA_VOCAB,
    more_specials: tuple[str, ...] = (),
    branches: dict[str, list[str]] | None = None,
    chat_template: str = CHAT_TEMPLATE,
    tokenizer_extra: dict | None = None,
) -> Path:
    """Write a model whose greedy reply is `"".join(reply_tokens)` then EOS (or a loop if endless).

    Each reply token must be distinct, since a token has one successor. With `think_tokens`
    `<think>` / `</think>` become special tokens, which makes mlx_lm.server split reasoning.
    `branches` maps a special token (in `more_specials`) to another script: a prompt that ends with
    that token gets that reply instead (the template decides when to emit it).
    """
    branches = branches or {}
    scripts = [reply_tokens, *branches.values()]
    every = [t for script in scripts for t in script]
    if len(set(every)) != len(every) or not all(scripts):
        raise ValueError("reply_tokens (and branches) must be non-empty and distinct")
    tags = ["<think>", "</think>"]
    if not think_tokens and any(t in tags for t in every):
        raise ValueError("a bare <think> token needs think_tokens=True")
    specials = SPECIALS + (tags if think_tokens else []) + list(more_specials)
    vocab_list = specials + [t for t in every if t not in specials]
    vocab_list += [w for w in extra_vocab if w not in vocab_list]
    # Pad so the single head's dimension (= vocab size) is even, as RoPE requires.
    while len(vocab_list) % 8:
        vocab_list.append(f"<|pad{len(vocab_list)}|>")
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    size = len(vocab)

    ids = [vocab[t] for t in reply_tokens]
    successor = dict.fromkeys(range(size), ids[0])  # any prompt token starts the script
    for a, b in zip(ids, ids[1:], strict=False):
        successor[a] = b
    successor[ids[-1]] = ids[0] if endless else vocab[EOS]
    for trigger, script in branches.items():
        chain = [vocab[trigger]] + [vocab[t] for t in script] + [vocab[EOS]]
        successor.update(zip(chain, chain[1:], strict=False))

    config = _llama_config(size, hidden=size, layers=1, heads=1, intermediate=8, tie=False)
    config["eos_token_id"] = vocab[EOS]
    lm_head = np.zeros((size, size), dtype=np.float32)
    for src, dst in successor.items():
        lm_head[dst, src] = _SCRIPT_LOGIT / np.sqrt(size)  # RMSNorm scales a one-hot by sqrt(size)
    weights = {name: mx.zeros_like(p) for name, p in tree_flatten(_llama_model(config).parameters())}
    weights["model.embed_tokens.weight"] = mx.eye(size)
    weights["lm_head.weight"] = mx.array(lm_head)
    for name in weights:
        if name.endswith("norm.weight"):
            weights[name] = mx.ones_like(weights[name])

    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.Fuse()  # concatenate tokens as they are: the text is exact
    tokenizer.add_special_tokens(specials)
    return _write_folder(
        dest, config, weights, tokenizer, specials, chat_template=chat_template, extra=tokenizer_extra
    )


def build_scripted_plain(dest: Path) -> Path:
    """Replies PLAIN_REPLY to any conversation."""
    return build_scripted(dest, PLAIN_TOKENS)


def build_scripted_think_tokens(dest: Path) -> Path:
    """Replies `<think>`THINK_REASONING`</think>`THINK_CONTENT with real think tokens."""
    return build_scripted(dest, THINK_TOKENS, think_tokens=True)


def build_scripted_think_text(dest: Path) -> Path:
    """Replies THINK_TEXT_REPLY; its tags are plain text, so no reasoning split happens."""
    return build_scripted(dest, THINK_TEXT_TOKENS)


def build_scripted_endless(dest: Path) -> Path:
    """Repeats ENDLESS_CYCLE forever; only max_tokens ends a reply."""
    return build_scripted(dest, ENDLESS_TOKENS, endless=True)


UNLOADABLE_ERROR = "Model type no_such_arch not supported."


def build_unloadable(dest: Path) -> Path:
    """A complete-looking model (config, tokenizer, weights) that the server cannot load: its
    architecture does not exist. mlxui's checks before spawning pass; the server fails."""
    folder = build_scripted_plain(dest)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "no_such_arch"}))
    return folder


# fmt: off
_WORDS = [
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as",
    "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but",
    "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an", "each",
    "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then",
    "them", "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look",
    "two", "more", "write", "go", "see", "number", "no", "way", "could", "people", "my", "than", "first",
    "water", "been", "call", "who", "oil", "its", "now", "find", "long", "down", "day", "did", "get",
    "come", "made", "may", "part", "sun", "moon", "cat", "dog",
]
# fmt: on


def build_tiny_llama(dest: Path, *, seed: int = 0) -> Path:
    """A random llama (hidden 64, 2 layers) with a word-level vocab: fast, replies word salad."""
    specials = SPECIALS
    vocab_list = specials + list(dict.fromkeys(_WORDS + [".", ",", "!", "?"]))
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    config = _llama_config(len(vocab), hidden=64, layers=2, heads=4, intermediate=128, tie=True)
    config["num_key_value_heads"] = 2
    config["eos_token_id"] = vocab[EOS]
    mx.random.seed(seed)
    model = _llama_model(config)
    weights = dict(tree_flatten(model.parameters()))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    return _write_folder(dest, config, weights, tokenizer, specials)


def build_tiny_vlm(dest: Path, *, seed: int = 0) -> Path:
    """A random qwen2_vl (hidden 64, 2 layers, tiny vision tower) servable by mlx_vlm.server."""
    from mlx_vlm.models import qwen2_vl

    vision_specials = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    specials = SPECIALS + vision_specials
    vocab_list = specials + list(dict.fromkeys(_WORDS + [".", ",", "!", "?"]))
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    config = {
        "model_type": "qwen2_vl",
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": len(vocab),
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},  # sums to head_dim / 2
        "tie_word_embeddings": False,
        "eos_token_id": vocab[EOS],
        "image_token_id": vocab["<|image_pad|>"],
        "video_token_id": vocab["<|video_pad|>"],
        "vision_start_token_id": vocab["<|vision_start|>"],
        "vision_end_token_id": vocab["<|vision_end|>"],
        "vision_config": {
            "model_type": "qwen2_vl",
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "mlp_ratio": 2,  # an int: transformers' strict config validation rejects a float
            "in_channels": 3,
            "patch_size": 14,
            "spatial_patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
    }
    mx.random.seed(seed)
    model = qwen2_vl.Model(_vlm_model_config(config))
    weights = dict(tree_flatten(model.parameters()))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    folder = _write_folder(dest, config, weights, tokenizer, specials)
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    preprocessor = {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
        "min_pixels": 3136,
        "max_pixels": 12544,
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return folder


def _vlm_model_config(config: dict):  # -> mlx_vlm's qwen2_vl.ModelConfig
    # The same steps mlx_vlm.utils.load_model takes, so the parameters we save are the ones it loads.
    from mlx_vlm.models import qwen2_vl
    from mlx_vlm.utils import update_module_configs

    params = json.loads(json.dumps(config))  # from_dict mutates its argument
    params.setdefault("text_config", {})
    model_config = qwen2_vl.ModelConfig.from_dict(params)
    return update_module_configs(model_config, qwen2_vl, params, ["text", "vision"])


def as_hf_cache_repo(model_dir: Path, cache_dir: Path, repo_id: str, revision: str = "main") -> Path:
    """Lay `model_dir` out as huggingface_hub would have downloaded `repo_id`; return the snapshot.

    Blob names follow the Hub's ETags: sha256 for LFS-like files (weights), git blob sha1 for the
    rest. The commit hash is derived from the content, so the same folder gives the same commit.
    """
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    files = sorted(p for p in Path(model_dir).rglob("*") if p.is_file())
    etags = {p.relative_to(model_dir).as_posix(): _hub_etag(p) for p in files}
    commit = hashlib.sha1(json.dumps(etags, sort_keys=True).encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        rel = path.relative_to(model_dir).as_posix()
        blob = repo_dir / "blobs" / etags[rel]
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)  # the Hub client writes it without newline
    return snapshot


def _hub_etag(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix in {".safetensors", ".bin", ".gguf", ".npz"}:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _llama_config(vocab: int, *, hidden: int, layers: int, heads: int, intermediate: int, tie: bool) -> dict:
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": intermediate,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "tie_word_embeddings": tie,
    }


def _llama_model(config: dict):  # -> mlx_lm.models.llama.Model
    from mlx_lm.models import llama

    return llama.Model(llama.ModelArgs.from_dict(config))


def _write_folder(
    dest: Path,
    config: dict,
    weights: dict,
    tokenizer: Tokenizer,
    specials: list[str],
    *,
    chat_template: str = CHAT_TEMPLATE,
    extra: dict | None = None,
) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    mx.save_safetensors(str(dest / "model.safetensors"), weights, metadata={"format": "mlx"})
    tokenizer.save(str(dest / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": chat_template,
        "eos_token": EOS,
        "pad_token": EOS,
        "unk_token": "<unk>",
        "additional_special_tokens": [t for t in specials if t not in (EOS, "<unk>")],
        "clean_up_tokenization_spaces": False,  # would eat the space in " ?" and alter exact text
        "model_max_length": 4096,
        **(extra or {}),
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (dest / "generation_config.json").write_text(json.dumps({"eos_token_id": config["eos_token_id"]}))
    return dest
