"""Every local model is servable without a profile: its implicit default profile.

Each complete model in the HF cache and each added folder that no named profile uses gets a
`Profile` with `implicit=True`, built here from what the model's files say (server kind from its
capabilities). It is never written to the database: it exists while the model is on disk, and it is
"materialised" the moment the user edits it, by saving a named profile of the same model, which
then replaces it (docs/architecture.md §7). Its name is the model's reference, the same string
`--model` takes: the repo id (`mlx-community/Qwen3-4B-4bit`) or the folder's absolute path. Profile
names can hold no "/", so the two kinds of names never clash.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from mlxui.hub.local import LocalEntry
from mlxui.servers.profile_rules import NAME_PATTERN
from mlxui.servers.profiles import Profile

MODEL_RUNS_SETTING = "servers.model_runs"  # {model reference: run record} of implicit servers


def model_ref(entry: LocalEntry) -> str:
    """What `--model` takes for this entry, and the name of its implicit server."""
    return entry.repo_id or str(entry.path)


def servable(entry: LocalEntry) -> bool:
    """A model a chat server can load: complete, present, not an embedding-only model."""
    return entry.complete and entry.problem is None and not entry.capabilities.embeddings


def default_profile(entry: LocalEntry, *, idle_ttl: int | None, run: dict[str, Any] | None = None) -> Profile:
    """The implicit profile of `entry`: the model's own defaults; `run` is a saved run record."""
    ref = model_ref(entry)
    run = run or {}
    return Profile(
        name=ref,
        model=ref,
        kind="vlm" if entry.capabilities.vision else "lm",
        idle_ttl=idle_ttl,
        implicit=True,
        run_pid=run.get("pid"),
        run_started_at=run.get("started_at"),
        run_cmdline=run.get("cmdline"),
        run_port=run.get("port"),
    )


def short_name(model: str) -> str:
    """`org/name` -> `name`; a folder path -> the folder's name."""
    return model.rstrip("/").rsplit("/", 1)[-1]


def display_name(profile: Profile) -> str:
    """What the UI calls a server: the profile's name, or for a model without a profile its repo
    id or its folder's name."""
    if profile.implicit and profile.model.startswith("/"):
        return short_name(profile.model)
    return profile.name


def suggested_profile_name(model: str, taken: set[str]) -> str:
    """A valid, unused profile name for a new profile of `model` (its short name, cleaned)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", short_name(model)).strip("-.")[:56] or "model"
    candidate, n = base, 2
    while candidate.casefold() in {t.casefold() for t in taken}:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def log_stem(name: str) -> str:
    """A file name for a server's log: the profile name itself, or for a model reference a
    readable, unique form without slashes (`mlx-community--Qwen3-4B-4bit`)."""
    if NAME_PATTERN.fullmatch(name):
        return name
    readable = re.sub(r"[^A-Za-z0-9._-]+", "--", name).strip("-.")[-80:]
    if name.count("/") == 1 and not name.startswith("/"):
        return f"model--{readable}"  # a repo id: unique as it is
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"folder--{readable}-{digest}"
