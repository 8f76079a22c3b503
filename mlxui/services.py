"""The services every page, API route and the gateway use: built once by `mlxui.app`, handed down.

Also the status shapes (`server_status`, `download_status`) that the JSON API, the tray and the
CLI read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlxui import db
from mlxui.chat.store import ChatStore
from mlxui.config import Config
from mlxui.hub.downloads import DownloadManager
from mlxui.servers.profiles import Profiles
from mlxui.servers.supervisor import Supervisor
from mlxui.ui.theme import Theme

log = logging.getLogger("mlxui")
GATEWAY_KEY_SETTING = "gateway.api_key"


@dataclass
class Services:
    """Everything a page or endpoint may use, built once at start-up and handed down."""

    config: Config
    downloads: DownloadManager
    supervisor: Supervisor
    profiles: Profiles
    chats: ChatStore
    theme: Theme = field(default_factory=Theme)
    ready: bool = False
    gateway_key: str | None = None  # Settings: when set, /v1/* needs "Authorization: Bearer <key>"
    startup_error: str | None = None
    _started: asyncio.Event = field(default_factory=asyncio.Event)
    status_sources: dict[str, Callable[[], list[dict[str, Any]]]] = field(default_factory=dict)

    def status_list(self, name: str) -> list[dict[str, Any]]:
        source = self.status_sources.get(name)
        return source() if source else []

    async def start(self) -> None:
        try:
            self.config.ensure_dirs()
            await db.init_db(self.config.db_path)
            await self.theme.load()
            key = await db.get_setting(GATEWAY_KEY_SETTING, None)
            self.gateway_key = key if isinstance(key, str) and key else None
            await self.downloads.restore()
            await self.supervisor.start_up()
        except (db.DatabaseError, OSError) as exc:
            self.startup_error = str(exc)
            log.error("mlxui cannot start: %s", exc)
        else:
            self.ready = True
            log.info("mlxui ready at %s (data in %s)", self.config.base_url, self.config.home)
        finally:
            self._started.set()

    async def wait_started(self, timeout: float = 60.0) -> None:
        """NiceGUI runs start-up hooks as background tasks: pages wait here before touching services."""
        await asyncio.wait_for(self._started.wait(), timeout)

    async def stop(self) -> None:
        self.ready = False
        await self.downloads.shutdown()  # rows keep their phase: the next start resumes them
        await self.supervisor.shut_down()  # stops servers unless the setting says keep them
        await db.close_db()


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
    )
    return {key: getattr(st, key) for key in keys}


def server_status(server: Any) -> dict[str, Any]:
    m = server.metrics
    return {
        "name": server.name, "state": str(server.state), "model": server.profile.model, "kind": server.kind,
        "pid": server.pid, "port": server.port, "error": server.error, "on_demand": server.on_demand,
        "rss_bytes": m.rss_bytes, "cpu_percent": m.cpu_percent, "gpu_util": m.gpu_util,
        "gpu_mem_bytes": m.gpu_mem_bytes, "tokens_per_s": round(m.tokens_per_s, 2), "requests": m.requests,
        "prompt_tokens_total": m.prompt_tokens_total, "completion_tokens_total": m.completion_tokens_total,
        "uptime_s": m.uptime_s,
    }  # fmt: skip
