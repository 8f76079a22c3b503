"""The services every page, API route and the gateway use: built once by `mlxui.app`, handed down.

Also the status shapes (`server_status`, `download_status`) that the JSON API, the tray and the
CLI read.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlxui import db
from mlxui.appearance import Appearance
from mlxui.chat.store import ChatStore
from mlxui.config import Config
from mlxui.hub.downloads import DownloadManager
from mlxui.servers.distributed import describe_ranks, is_distributed
from mlxui.servers.memory_budget import effective_budget
from mlxui.servers.model_defaults import display_name
from mlxui.servers.peers import PeerBook
from mlxui.servers.supervisor import Supervisor
from mlxui.settings import SettingError, SettingsGroup

if TYPE_CHECKING:
    from mlxui.servers.dialects.ollama_listener import OllamaListener

log = logging.getLogger("mlxui")


@dataclass
class Services:
    """Everything a page or endpoint may use, built once at start-up and handed down.

    Each service owns its writes: profiles and the servers' settings belong to `supervisor`
    (`supervisor.profiles`, `supervisor.settings`), downloads to `downloads`, chats to `chats`, the
    look to `appearance`. Faces (pages, API, CLI through the API) call their methods.
    """

    config: Config
    downloads: DownloadManager
    supervisor: Supervisor
    chats: ChatStore
    appearance: Appearance = field(default_factory=Appearance)
    peers: PeerBook = field(default_factory=PeerBook)  # other mlxui machines (servers/peers.py)
    ollama: OllamaListener | None = None  # the Ollama API's listener (app.py starts it)
    ready: bool = False
    startup_error: str | None = None
    _started: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        try:
            self.config.ensure_dirs()
            await db.init_db(self.config.db_path)
            await self.appearance.load()
            await self.downloads.settings.load()
            await self.downloads.restore()
            await self.supervisor.start_up()  # loads the servers' settings and the profiles
            await self.peers.start()  # loads the other machines and starts watching them
            self.downloads.on_done(lambda _state: self.supervisor.refresh_models())  # servable at once
            await self._key_for_the_network()
        except (db.DatabaseError, OSError) as exc:
            self.startup_error = str(exc)
            log.error("mlxui cannot start: %s", exc)
        else:
            self.ready = True
            log.info("mlxui ready at %s (data in %s)", self.config.base_url, self.config.home)
        finally:
            self._started.set()

    async def _key_for_the_network(self) -> None:
        """Bound beyond this machine, mlxui needs a key for other machines' clients (mlxui.access):
        without one saved yet, make one and say it once in the log, as Jupyter does with its token."""
        settings = self.supervisor.settings
        if self.config.is_loopback or settings.gateway_key:
            return
        await settings.save(gateway_key="mlxui-" + secrets.token_urlsafe(24))
        log.warning(
            "mlxui is reachable from other machines at %s; they need this key (Settings shows it no more): %s",
            self.config.base_url,
            settings.gateway_key,
        )

    async def wait_started(self, timeout: float = 60.0) -> None:
        """NiceGUI runs start-up hooks as background tasks: pages wait here before touching services."""
        await asyncio.wait_for(self._started.wait(), timeout)

    async def stop(self) -> None:
        self.ready = False
        await self.peers.stop()
        await self.downloads.shutdown()  # rows keep their phase: the next start resumes them
        await self.supervisor.shut_down()  # stops servers unless the setting says keep them
        await db.close_db()

    # --- settings as one flat list (JSON API and `mlxui settings`) ---------------------------

    def _setting_groups(self) -> dict[str, SettingsGroup]:
        return {
            "servers": self.supervisor.settings,
            "downloads": self.downloads.settings,
            "appearance": self.appearance,
        }

    def settings_view(self) -> dict[str, Any]:
        """Every setting by name; the gateway key is never sent back, only whether one is set. The
        memory budget in force and where it comes from are added (read-only)."""
        view: dict[str, Any] = {}
        for group in self._setting_groups().values():
            for name in group.names():
                view[name] = getattr(group, name)
        view["gateway_key_set"] = bool(view.pop("gateway_key"))
        budget, source = effective_budget(self.supervisor.settings, self.config)
        view["memory_budget_bytes"] = budget  # the budget in force, whatever set it
        view["memory_budget_source"] = source  # "environment", "setting" or "default: …"
        port, source = self.ollama_port()
        view["ollama_port_in_force"] = port  # MLXUI_OLLAMA_PORT or the setting
        view["ollama_port_source"] = source
        view["ollama_note"] = self.ollama.note if self.ollama is not None else "The Ollama API is not set up."
        return view

    def ollama_port(self) -> tuple[int, str]:
        """The Ollama API's port in force (0: off) and where it comes from."""
        if self.config.ollama_port is not None:
            return self.config.ollama_port, "from MLXUI_OLLAMA_PORT"
        return self.supervisor.settings.ollama_port, "the setting ollama_port"

    async def change_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Check every change first (SettingError, nothing saved), then save them group by group."""
        groups = self._setting_groups()
        owners = {name: key for key, group in groups.items() for name in group.names()}
        by_group: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for name, value in changes.items():
            if name not in owners:
                errors[name] = f"{name!r} is not a setting; known: {', '.join(sorted(owners))}."
                continue
            try:
                groups[owners[name]].check(name, value)
            except SettingError as exc:
                errors[name] = exc.message
            by_group.setdefault(owners[name], {})[name] = value
        if errors:
            first = next(iter(errors))
            raise SettingError(first, errors[first], errors)
        for key, group_changes in by_group.items():
            await groups[key].save(**group_changes)
        if "ollama_port" in changes and self.ollama is not None:
            await self.ollama.apply()
        return self.settings_view()


def server_statuses(services: Services) -> list[dict[str, Any]]:
    return [server_status(s) for s in services.supervisor.fleet()]


def memory_status(services: Services) -> dict[str, Any]:
    """The memory budget and what the running servers plan to hold and really hold (bytes)."""
    supervisor = services.supervisor
    running = [s for s in supervisor.servers.values() if s.metrics.rss_bytes is not None]
    return {
        "budget_bytes": supervisor.memory_budget(),
        "planned_bytes": supervisor.scheduler.planned_bytes(),
        "used_bytes": sum(s.metrics.rss_bytes or 0 for s in running),
        "waiting": {s.name: why for s, why in supervisor.scheduler.waiting.items()},
    }


def download_statuses(services: Services) -> list[dict[str, Any]]:
    return [download_status(st) for st in services.downloads.downloads.values()]


def download_status(st: Any) -> dict[str, Any]:
    keys = (
        "repo_id",
        "state",
        "bytes_done",
        "bytes_total",
        "speed_bps",
        "eta_s",
        "current_file",
        "note",
        "error",
        "connections",
        "limit_bps",
    )
    return {key: getattr(st, key) for key in keys}


def server_status(server: Any) -> dict[str, Any]:
    m = server.metrics
    return {
        "name": server.name, "label": display_name(server.profile), "implicit": server.profile.implicit,
        "state": str(server.state), "model": server.profile.model, "kind": server.kind,
        "pid": server.pid, "port": server.port, "error": server.error, "on_demand": server.on_demand,
        "rss_bytes": m.rss_bytes, "cpu_percent": m.cpu_percent, "gpu_util": m.gpu_util,
        "gpu_mem_bytes": m.gpu_mem_bytes, "tokens_per_s": round(m.tokens_per_s, 2), "requests": m.requests,
        "prompt_tokens_total": m.prompt_tokens_total, "completion_tokens_total": m.completion_tokens_total,
        "uptime_s": m.uptime_s, "reserved_bytes": m.reserved_bytes, "memory_bytes": m.rss_bytes,
        "pinned": server.profile.pinned, "note": server.note, "evictions": m.evictions,
        # distributed: "3 ranks here", "4 ranks: 2 here, 2 on 10.0.0.2" (metrics sum the local ones)
        "ranks": describe_ranks(server.profile) if is_distributed(server.profile) else None,
    }  # fmt: skip
