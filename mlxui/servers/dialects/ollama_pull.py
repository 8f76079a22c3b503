"""`/api/pull` and `/api/delete`: mlxui's own downloads and cache behind Ollama's model management.

Names are Hugging Face repo ids (`mlx-community/Qwen3-4B-4bit`, with or without `:latest`; a
`hf.co/` prefix is accepted). The download is the app's (`DownloadManager`): the Models page shows
it, and it goes on if the client leaves. Progress comes as Ollama's lines: `pulling manifest`, one
`pulling <digest>` line per change with `total` and `completed` bytes, then `verifying sha256
digest`, `writing manifest` and `success`, or a line with `error`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from starlette.types import Receive, Send

from mlxui.hub.downloads import DownloadManager
from mlxui.hub.errors import HubError
from mlxui.hub.local import LocalModelError, ModelInUse, delete_cached_model
from mlxui.servers.dialects.ollama_models import find, mlxui_name
from mlxui.servers.dialects.ollama_wire import Ndjson, OllamaError, send_json, until_disconnect
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import RUNNING_STATES
from mlxui.servers.supervisor import Supervisor
from mlxui.state import DownloadState

TICK_S = 0.25  # how often a streamed pull reports progress
HUB_PREFIXES = ("hf.co/", "huggingface.co/", "https://huggingface.co/")


def repo_id_of(name: str) -> str:
    repo = mlxui_name(name.strip())
    for prefix in HUB_PREFIXES:
        repo = repo.removeprefix(prefix)
    return repo


async def pull(
    downloads: DownloadManager, raw: dict[str, Any], name: str, receive: Receive, send: Send
) -> None:
    try:
        state = await downloads.enqueue(repo_id_of(name))
    except HubError as exc:  # not a repo id
        raise OllamaError(400, f"{exc.message} mlxui pulls Hugging Face models by repo id, "
                               "e.g. mlx-community/Qwen3-4B-4bit") from exc  # fmt: skip
    if raw.get("stream") is False:
        await until_disconnect(receive, _whole(downloads, state, send))
        return
    out = Ndjson(send)
    await out.line({"status": "pulling manifest"})
    await until_disconnect(receive, _progress(downloads, state, out))


async def _progress(downloads: DownloadManager, state: DownloadState, out: Ndjson) -> None:
    digest = "sha256:" + hashlib.sha256(state.repo_id.encode()).hexdigest()
    shown: tuple[int, int] | None = None
    while True:
        state = await downloads.wait(state.repo_id, timeout=TICK_S)
        if state.bytes_total and (state.bytes_total, state.bytes_done) != shown:
            shown = (state.bytes_total, state.bytes_done)
            await out.line({"status": f"pulling {digest[7:19]}", "digest": digest,
                            "total": state.bytes_total, "completed": state.bytes_done})  # fmt: skip
        if not state.active:
            break
    if state.state == "done":
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            await out.line({"status": status})
    else:
        await out.line({"error": _why(state)})
    await out.end()


async def _whole(downloads: DownloadManager, state: DownloadState, send: Send) -> None:
    while state.active:
        state = await downloads.wait(state.repo_id, timeout=60)
    if state.state == "done":
        await send_json(send, 200, {"status": "success"})
    else:
        await send_json(send, 502 if state.state == "failed" else 409, {"error": _why(state)})


def _why(state: DownloadState) -> str:
    if state.state == "failed":
        return f"pulling {state.repo_id} failed: {state.error}"
    return f"the download of {state.repo_id} was {state.state} in mlxui (resume it on the Models page)"


async def delete(supervisor: Supervisor, downloads: DownloadManager, cache_dir: Path, name: str) -> None:
    """Delete a downloaded model from the cache; refused (409) while a server runs it."""
    server = await find(supervisor, name)
    entry = supervisor.local_entry(server)
    if entry is None or entry.repo_id is None:
        raise OllamaError(400, f"{name!r} is not a downloaded model (an added folder is removed on "
                               "mlxui's Models page; its files stay)")  # fmt: skip

    def using(repo_id: str, paths: list[Path]) -> str | None:
        return next((s.name for s in supervisor.servers.values() if _runs(s, repo_id, paths)), None)

    try:
        await delete_cached_model(cache_dir, entry.repo_id, in_use=using, downloads=downloads)
    except ModelInUse as exc:
        raise OllamaError(409, exc.message) from exc
    except LocalModelError as exc:
        raise OllamaError(404, exc.message) from exc
    await supervisor.refresh_models()


def _runs(server: ManagedServer, repo_id: str, paths: list[Path]) -> bool:
    if server.state not in RUNNING_STATES:
        return False
    model = server.profile.model
    return model == repo_id or any(Path(model) == p or p in Path(model).parents for p in paths)
