"""Profile validation rules: field-by-field checks that need no I/O, and their messages.

`mlxui.servers.profiles` adds the checks that touch the disk (is the model there, what kind is
it) and the database (clashes with other profiles are passed in as `others`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlxui.hub.repo_id import REPO_ID  # the one model-id rule (profiles.resolve_model uses it too)
from mlxui.servers.distributed import BACKENDS, MAX_RANKS, PARALLEL_MODES, is_ip, valid_host

if TYPE_CHECKING:
    from mlxui.servers.profiles import Profile

# Not "-x" (it reads as a command-line option) and not only dots ("." and ".." are path steps).
NAME_PATTERN = re.compile(r"(?!\.+$)[A-Za-z0-9._][A-Za-z0-9._-]{0,63}")
KINDS = ("lm", "vlm")
PORT_RANGE = (1024, 65535)

# Fields a user edits; the run_* fields belong to the supervisor.
EDITABLE_FIELDS = (
    "name",
    "model",
    "kind",
    "port",
    "temperature",
    "top_p",
    "max_tokens",
    "prompt_cache_size",
    "chat_template_args",
    "draft_model",
    "autostart",
    "idle_ttl",
    "pinned",
    "ranks",
    "hosts",
    "backend",
    "hostfile",
    "remote_python",
    "parallel",
)
# What mlx_vlm.server has no flag for: the form can grey these out for vision profiles.
VLM_IGNORED_FIELDS = frozenset({"temperature", "top_p", "prompt_cache_size"})
# (low, high, low is allowed) per numeric field
_FLOAT_RANGES = {"temperature": (0.0, 2.0, True), "top_p": (0.0, 1.0, False)}
_INT_RANGES = {"max_tokens": (1, 1_048_576), "prompt_cache_size": (0, 10_000), "idle_ttl": (1, 7 * 24 * 3600)}


class ProfileError(ValueError):
    """Fields that cannot be saved. `field`/`message` name the first; `errors` has all of them."""

    def __init__(self, field: str, message: str, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.errors: dict[str, str] = dict(errors or {field: message})


class FieldChecker:
    """Field-by-field checks that need no I/O; collects one message per bad field."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.errors: dict[str, str] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def run(self, others: list[Profile], own_port: int) -> dict[str, Any]:
        for unknown in sorted(set(self.values) - set(EDITABLE_FIELDS)):
            self.fail(unknown, f"{unknown!r} is not a profile setting.")
        clean: dict[str, Any] = {
            "name": self._name(others),
            "model": self._text("model", required=True),
            "kind": self._kind(),
            "port": self._port(others, own_port),
            "chat_template_args": self._template_args(),
            "draft_model": self._text("draft_model", required=False),
            "autostart": self._bool("autostart"),
            "pinned": self._bool("pinned"),
        }
        clean.update(self._distributed())
        for name, (low, high, low_ok) in _FLOAT_RANGES.items():
            clean[name] = self._float(name, low, high, low_ok)
        for name, (low, high) in _INT_RANGES.items():
            clean[name] = self._int(name, low, high)
        if clean["model"] and not clean["model"].startswith(("/", "~")) and "/" not in clean["model"]:
            self.fail("model", "Give a model id such as mlx-community/Qwen3-0.6B-4bit, or a folder path.")
        for key in ("model", "draft_model"):
            if clean[key] and clean[key].startswith("~"):
                clean[key] = str(Path(clean[key]).expanduser())
        return clean

    def _name(self, others: list[Profile]) -> str:
        name = self.values.get("name")
        if not isinstance(name, str) or not name.strip():
            self.fail("name", "Give the profile a name.")
            return ""
        name = name.strip()
        if name.startswith("-") or set(name) == {"."}:
            self.fail("name", "Start the name with a letter, a digit or an underscore.")
        elif not NAME_PATTERN.fullmatch(name):
            self.fail("name", "Use up to 64 letters, digits, dots, dashes or underscores (no spaces).")
        elif any(p.name.casefold() == name.casefold() for p in others):
            self.fail("name", f"A profile named {name!r} already exists.")
        return name

    def _text(self, key: str, *, required: bool) -> str | None:
        value = self.values.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(key, "Choose a model: a downloaded repo or a local folder.")
            return None
        if not isinstance(value, str | Path):
            self.fail(key, "Give a model id or a folder path as text.")
            return None
        return str(value).strip()

    def _kind(self) -> str | None:
        kind = self.values.get("kind")
        if kind is None or kind == "":
            return None  # decided from the model's capabilities
        if kind not in KINDS:
            self.fail("kind", "The server kind is 'lm' (mlx_lm.server) or 'vlm' (mlx_vlm.server).")
            return None
        return str(kind)

    def _port(self, others: list[Profile], own_port: int) -> int | None:
        port = self._int("port", *PORT_RANGE)
        if port is None or "port" in self.errors:
            return port
        if port == own_port:
            self.fail("port", f"Port {port} is mlxui's own port; choose another or leave it empty (auto).")
        for other in others:
            if other.port == port:
                self.fail("port", f"Port {port} is already used by the profile {other.name!r}.")
        return port

    def _template_args(self) -> dict[str, Any]:
        value = self.values.get("chat_template_args")
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                self.fail("chat_template_args", f"Not valid JSON: {exc.msg} (line {exc.lineno}).")
                return {}
            except RecursionError:
                self.fail("chat_template_args", "This JSON is nested too deeply.")
                return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            self.fail("chat_template_args", 'Give an object such as {"enable_thinking": false}.')
            return {}
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            self.fail(
                "chat_template_args", "Only JSON values (text, numbers, true/false, lists) are allowed."
            )
            return {}
        return value

    def _distributed(self) -> dict[str, Any]:
        """ranks, hosts, backend, hostfile, remote Python, parallel mode (servers/distributed.py)."""
        ranks = self._int("ranks", 1, MAX_RANKS)
        hosts = self.values.get("hosts")
        if isinstance(hosts, str):
            hosts = [h for h in re.split(r"[,\s]+", hosts) if h]
        if hosts is not None and (
            not isinstance(hosts, list) or not all(isinstance(h, str) and valid_host(h) for h in hosts)
        ):
            self.fail(
                "hosts", "Give host names or IP addresses, separated by commas (e.g. 10.0.0.1,10.0.0.2)."
            )
            hosts = None
        backend = self.values.get("backend") or None
        if backend is not None and backend not in BACKENDS:
            self.fail(
                "backend", f"The backend is one of {', '.join(BACKENDS)} (ring unless you chose another)."
            )
        parallel = self.values.get("parallel") or None
        if parallel is not None and parallel not in PARALLEL_MODES:
            self.fail("parallel", "The mode is 'tensor' (every model) or 'pipeline' (some families).")
        paths = {}
        for key in ("hostfile", "remote_python"):
            value = self.values.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                paths[key] = None
            elif not isinstance(value, str) or not value.strip().startswith("/"):
                self.fail(key, "Give an absolute path (starting with /), or leave it empty.")
                paths[key] = None
            else:
                paths[key] = value.strip()
        if paths["hostfile"] and hosts:
            self.fail("hosts", "Give either hosts or a hostfile, not both.")
        elif hosts and backend in (None, "ring") and not all(is_ip(h) for h in hosts):
            self.fail(
                "hosts",
                "The ring backend needs IP addresses (e.g. the Thunderbolt Bridge's), or a hostfile "
                "from mlx.distributed_config.",
            )
        return {
            "ranks": None if ranks == 1 else ranks,
            "hosts": hosts or None,
            "backend": None if backend == "ring" else backend,
            "parallel": None if parallel == "tensor" else parallel,
            **paths,
        }

    def _bool(self, key: str) -> bool:
        value = self.values.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(key, "Choose yes or no.")
            return False
        return value

    def _float(self, key: str, low: float, high: float, low_ok: bool) -> float | None:
        value = self.values.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(key, "Give a number or leave it empty (the server's default).")
            return None
        if value > high or value < low or (value == low and not low_ok):
            bound = "from" if low_ok else "above"
            self.fail(key, f"Must be {bound} {low:g} up to {high:g}.")
        return float(value)

    def _int(self, key: str, low: int, high: int) -> int | None:
        value = self.values.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # number inputs in the UI deliver floats
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "Give a whole number or leave it empty.")
            return None
        if not low <= value <= high:
            self.fail(key, f"Must be between {low} and {high}.")
        return value


def model_missing(model: str) -> str:
    if model.startswith("/"):
        return f"{model} is not a model folder (it has no config.json)."
    if REPO_ID.fullmatch(model):
        return f"{model} is not downloaded: download it on the Models page first."
    shown = model if len(model) <= 80 else model[:80] + "..."  # a pasted page stays one readable sentence
    return f"{shown!r} is neither a model id (org/name) nor an absolute folder path."
