"""Settings that decide where mlxui keeps its data and where it listens.

Precedence: explicit arguments (CLI flags) > environment (`MLXUI_*`) > defaults. Hugging Face
locations come from huggingface_hub's own constants so `HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`
and `HF_TOKEN` behave exactly as they do for every other HF tool.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from mlxui.servers.memory_budget import SizeError, check_budget

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _hf_cache_dir() -> Path:
    # huggingface_hub resolves its cache once, at import; an HF_HUB_CACHE set later still wins here.
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hf_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@dataclass(frozen=True)
class Config:
    home: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    hf_cache: Path = field(default_factory=_hf_cache_dir)
    hf_endpoint: str = field(default_factory=_hf_endpoint)
    memory_budget: int | None = None  # bytes, from MLXUI_MEMORY_BUDGET; overrides the setting
    ollama_port: int | None = None  # from MLXUI_OLLAMA_PORT (0: off); overrides the setting
    origins: tuple[str, ...] = ()  # MLXUI_ORIGINS: web origins beyond loopback that may call the gateway

    @property
    def db_path(self) -> Path:
        return self.home / "mlxui.sqlite3"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def ensure_dirs(self) -> None:
        for path in (self.home, self.logs_dir, self.images_dir):
            path.mkdir(parents=True, exist_ok=True)

    def with_overrides(self, **changes: object) -> Config:
        """A copy with the given non-None fields replaced (CLI flags use this)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("mlxui", appauthor=False))


def load_config(env: dict[str, str] | None = None) -> Config:
    """Read the configuration from the environment (``os.environ`` unless given)."""
    env = dict(os.environ if env is None else env)
    home = Path(env["MLXUI_HOME"]).expanduser() if env.get("MLXUI_HOME") else default_home()
    saved = read_saved_settings(home)
    host = env.get("MLXUI_HOST") or saved.get("host") or DEFAULT_HOST
    port_text = env.get("MLXUI_PORT") or str(saved.get("port") or DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError as exc:
        raise ConfigError(f"MLXUI_PORT must be a number, got {port_text!r}") from exc
    check_port(port)
    budget = _memory_budget(env.get("MLXUI_MEMORY_BUDGET", ""))
    ollama_port = _ollama_port(env.get("MLXUI_OLLAMA_PORT", ""))
    origins = parse_origins(env.get("MLXUI_ORIGINS", ""))
    return Config(
        home=home.resolve(),
        host=host,
        port=port,
        memory_budget=budget,
        ollama_port=ollama_port,
        origins=origins,
    )


def parse_origins(text: str) -> tuple[str, ...]:
    """MLXUI_ORIGINS: comma-separated exact web origins (`scheme://host[:port]`, no path) whose pages
    may call the gateway from a browser (CORS, docs/security.md). Loopback origins need no entry."""
    origins: list[str] = []
    for item in (part.strip().rstrip("/") for part in text.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:  # a port that is not a number, or out of range
            port_ok = False
        extra = parts.path or parts.query or parts.fragment or parts.username
        if parts.scheme not in ("http", "https") or not parts.hostname or extra or not port_ok:
            raise ConfigError(
                f"MLXUI_ORIGINS takes origins like https://chat.example:8080 (no path), got {item!r}"
            )
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(dict.fromkeys(origins))


def _ollama_port(text: str) -> int | None:
    """MLXUI_OLLAMA_PORT: the Ollama API's port, 0 for off; None when unset or blank."""
    if not text.strip():
        return None
    if not text.strip().isdigit() or int(text) > 65535:
        raise ConfigError(f"MLXUI_OLLAMA_PORT must be a port (1 to 65535) or 0 for off, got {text!r}")
    return int(text)


def _memory_budget(text: str) -> int | None:
    """MLXUI_MEMORY_BUDGET as bytes (units as in Settings: 24GB, 512MB); None when unset or blank."""
    if not text.strip():
        return None
    try:
        return check_budget(text)
    except SizeError as exc:
        raise ConfigError(f"MLXUI_MEMORY_BUDGET={text!r} cannot be used: {exc}") from exc


SAVED_SETTINGS = "config.json"  # host/port chosen in Settings; flags and MLXUI_* still win


def read_saved_settings(home: Path) -> dict[str, object]:
    try:
        data = json.loads((home / SAVED_SETTINGS).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{home / SAVED_SETTINGS} is unreadable ({exc}); fix or delete it") from exc
    return data if isinstance(data, dict) else {}


def save_network_settings(home: Path, host: str, port: int) -> None:
    """Remember host and port for the next start (Settings page)."""
    check_port(port)
    home.mkdir(parents=True, exist_ok=True)
    data = read_saved_settings(home) | {"host": host, "port": port}
    (home / SAVED_SETTINGS).write_text(json.dumps(data, indent=2))


def check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"port must be between 1 and 65535, got {port}")


class ConfigError(ValueError):
    """A setting the user gave cannot be used; the message says which and why."""
