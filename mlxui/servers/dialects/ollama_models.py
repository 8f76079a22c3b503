"""The Ollama API's view of mlxui's models: names with tags, `/api/tags`, `/api/ps`, `/api/show`.

Ollama names carry a tag (`llama3:latest`); mlxui's models have one version each, so `name:latest`
is the model mlxui calls `name` (any of its names: docs/architecture.md §7) and any other tag is
unknown. Lists name each model as the UI does (a profile's name, a repo id, a folder's name).
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from mlxui.hub.capabilities import Capabilities
from mlxui.hub.local import LocalEntry
from mlxui.servers.dialects.ollama_wire import OllamaError, iso_of
from mlxui.servers.keep_alive import idle_limit
from mlxui.servers.model_defaults import display_name
from mlxui.servers.names import find_server
from mlxui.servers.peers import PeerBook
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import RUNNING_STATES
from mlxui.servers.supervisor import Supervisor

TAG = "latest"
NEVER = "2318-01-01T00:00:00Z"  # what Ollama shows for a model kept loaded (keep_alive < 0)


def mlxui_name(name: str) -> str:
    """`org/name:latest` -> `org/name`; a name without a tag stays; other tags: OllamaError 404."""
    base, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:  # no tag (a ":" inside a path is not one)
        return name
    if tag.casefold() != TAG:
        raise OllamaError(404, f"model {name!r} not found: mlxui models have one tag, "
                               f"{TAG!r} (try {base + ':' + TAG!r})")  # fmt: skip
    return base


def tagged(name: str) -> str:
    return f"{name}:{TAG}"


async def find(supervisor: Supervisor, name: str) -> ManagedServer:
    """The server an Ollama name stands for, or OllamaError 404 with close matches."""
    wanted = mlxui_name(name)
    server = await supervisor.lookup(wanted)
    if server is None:
        close = difflib.get_close_matches(wanted, supervisor.model_names(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(tagged(c)) for c in close)}?" if close else ""
        raise OllamaError(404, f"model {name!r} not found{hint} (GET /api/tags lists them)")
    return server


def listed_name(server: ManagedServer, supervisor: Supervisor) -> str:
    """How lists name a server: the UI's name when it reaches the server, else its own name."""
    label = display_name(server.profile)
    return label if find_server(supervisor.servers, label) is server else server.name


def details(caps: Capabilities | None) -> dict[str, Any]:
    family = (caps.model_type if caps else None) or ""
    return {
        "parent_model": "",
        "format": "mlx",
        "family": family,
        "families": [family] if family else None,
        "parameter_size": (caps.parameters_label if caps else None) or "",
        "quantization_level": _quantization(caps),
    }


def _quantization(caps: Capabilities | None) -> str:
    if caps is None:
        return ""
    if caps.quant_bits:
        return (
            f"{caps.quant_mode.upper()}"
            if caps.quant_mode not in (None, "affine")
            else f"{caps.quant_bits}bit"
        )
    return (caps.dtype or "").upper().replace("BFLOAT", "BF").replace("FLOAT", "F")


def _digest(server: ManagedServer, entry: LocalEntry | None) -> str:
    return hashlib.sha256((entry.key if entry else server.profile.model).encode()).hexdigest()


def model_row(server: ManagedServer, supervisor: Supervisor) -> dict[str, Any]:
    """One model of `/api/tags`."""
    entry = supervisor.local_entry(server)
    name = tagged(listed_name(server, supervisor))
    return {
        "name": name,
        "model": name,
        "modified_at": iso_of(entry.last_modified if entry else 0),
        "size": entry.size_on_disk if entry else 0,
        "digest": _digest(server, entry),
        "details": details(entry.capabilities if entry else None),
    }


def tags(supervisor: Supervisor, peers: PeerBook | None = None) -> dict[str, Any]:
    """`/api/tags`: the local models, then other mlxui machines' (`<peer>/<model>`) while up."""
    servers = sorted(supervisor.servers.values(), key=lambda s: listed_name(s, supervisor).casefold())
    rows = [model_row(s, supervisor) for s in servers]
    for card in peers.model_cards(set(supervisor.servers)) if peers is not None else []:
        if card["peer_state"] == "up":
            name = tagged(card["id"])
            rows.append({"name": name, "model": name, "modified_at": iso_of(card.get("created") or 0), "size": 0,
                         "digest": hashlib.sha256(name.encode()).hexdigest(), "details": details(None)})  # fmt: skip
    return {"models": rows}


def running(supervisor: Supervisor) -> dict[str, Any]:
    """`/api/ps`: the servers that run, with the memory they use (or plan) and when they stop."""
    rows = []
    for server in sorted(supervisor.servers.values(), key=lambda s: s.name):
        if server.state not in RUNNING_STATES:
            continue
        row = model_row(server, supervisor)
        del row["modified_at"]
        entry = supervisor.local_entry(server)
        size = server.metrics.rss_bytes or supervisor.plans.plan(server) or 0
        vram = server.metrics.gpu_mem_bytes
        row |= {
            "size": size,
            "size_vram": vram if vram is not None else (size if sys.platform == "darwin" else 0),
            "expires_at": _expires_at(server),
            "context_length": entry.capabilities.context_length if entry else None,
        }
        rows.append(row)
    return {"models": rows}


def _expires_at(server: ManagedServer) -> str:
    limit = idle_limit(server)
    if limit is None:
        return NEVER
    return iso_of(time.time() + max(0.0, server.last_used + limit - time.monotonic()))


async def show(server: ManagedServer, supervisor: Supervisor) -> dict[str, Any]:
    """`/api/show`: details, model_info in Ollama's key names, capabilities, the chat template."""
    entry = supervisor.local_entry(server)
    caps = entry.capabilities if entry else None
    template = await asyncio.to_thread(chat_template, entry.path) if entry else None
    arch = (caps.model_type if caps else None) or "unknown"
    info: dict[str, Any] = {"general.architecture": arch, "general.basename": listed_name(server, supervisor)}
    if caps:
        numbers = {"general.parameter_count": caps.parameters, f"{arch}.context_length": caps.context_length,
                   f"{arch}.embedding_length": caps.hidden_size, f"{arch}.block_count": caps.num_hidden_layers,
                   f"{arch}.attention.head_count": caps.num_attention_heads,
                   f"{arch}.attention.head_count_kv": caps.num_key_value_heads,
                   f"{arch}.vocab_size": caps.vocab_size}  # fmt: skip
        info |= {key: value for key, value in numbers.items() if value is not None}
    return {
        "modelfile": f"# mlxui serves this model with MLX\nFROM {server.profile.model}\n",
        "parameters": "",
        "template": template or "",
        "details": details(caps),
        "model_info": info,
        "capabilities": capabilities(caps),
        "modified_at": iso_of(entry.last_modified if entry else 0),
    }


def capabilities(caps: Capabilities | None) -> list[str]:
    found = ["completion"]
    if caps:
        found += [name for name, has in (("vision", caps.vision), ("tools", caps.tools),
                                         ("thinking", caps.thinking)) if has]  # fmt: skip
    return found


def chat_template(folder: Path) -> str | None:
    """The model's chat template (Jinja), from `chat_template.jinja` or `tokenizer_config.json`."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(errors="replace")
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OllamaError(500, f"cannot read the chat template of {folder}: {exc}") from exc
    template = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return template if isinstance(template, str) else None
