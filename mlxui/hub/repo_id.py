"""What a model id (org/name) and a revision may look like: the one rule for the whole app.

A repo id becomes a folder name in the HF cache (`models--org--name`) and part of Hub URLs, so
anything that could walk the file system or confuse the cache layout is refused: `..`, `--`, a
`.git` suffix, separators other than the one slash, parts longer than the Hub allows (96).
"""

from __future__ import annotations

import re

from mlxui.hub.errors import BadRepoId

# One part (user, organisation or model name): starts with a letter or digit, ends with one or `_`.
NAME_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
# The whole rule as a pattern (for `fullmatch`): org/name, no `..` or `--` anywhere, no `.git` at the end.
REPO_ID = re.compile(rf"(?!.*(?:\.\.|--))(?:{NAME_PART.pattern})/(?:{NAME_PART.pattern})(?<!\.git)")
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
_SHOWN = 80  # a longer id is cut in the message, so a pasted page stays one readable sentence


def is_repo_id(text: str) -> bool:
    return REPO_ID.fullmatch(text) is not None


def check_repo_id(text: str) -> str:
    """`text` without surrounding spaces if it is a model id (org/name); else raises BadRepoId."""
    repo_id = text.strip()
    if not is_repo_id(repo_id):
        shown = repo_id if len(repo_id) <= _SHOWN else repo_id[:_SHOWN] + "..."
        raise BadRepoId(
            f"{shown!r} is not a model id: use the form org/name, e.g. mlx-community/Qwen3-0.6B-4bit."
        )
    return repo_id


def check_revision(text: str) -> str:
    """A branch, tag or commit id; it becomes a path under refs/, so no `..` or empty segments."""
    revision = text.strip()
    parts = revision.split("/")
    if not _REVISION.fullmatch(revision) or any(p in ("", ".", "..") for p in parts):
        raise BadRepoId(f"{revision[:_SHOWN]!r} is not a revision: use a branch, tag or commit id.")
    return revision
