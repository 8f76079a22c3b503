"""`mlxui models pull` while the app runs: the download goes to the app's download manager (so it
shows in the Models page's Downloads tile and survives this terminal), and the CLI follows its
progress through /api/downloads, as `ollama pull` follows its server."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Protocol

import httpx

from mlxui.cli.common import CliError
from mlxui.config import Config

POLL_S = 0.5


class Bar(Protocol):
    def update(self, progress: Any) -> None: ...
    def finish(self) -> None: ...
    def interrupted(self) -> None: ...


def app_is_running(config: Config) -> bool:
    """True when an mlxui app answers at the configured address (and says it is mlxui)."""
    try:
        response = httpx.get(f"{config.base_url}/api/status", timeout=2.0, trust_env=False)
        return response.status_code == 200 and response.json().get("app") == "mlxui"
    except (httpx.HTTPError, ValueError):
        return False


def pull_through_app(config: Config, repo_id: str, revision: str, bar: Bar) -> str:
    """Start (or join) the app's download of `repo_id` and follow it to the end: its final state,
    "done"; CliError for a failed, cancelled or paused download. Ctrl+C stops following only."""
    with httpx.Client(base_url=config.base_url, timeout=10.0, trust_env=False) as api:
        started = _call(api, "POST", "/api/downloads", json={"repo_id": repo_id, "revision": revision})
        if started.status_code != 202:
            raise CliError(_message(started), 2 if started.status_code == 400 else 1)
        try:
            while True:
                row = _row(api, repo_id)
                bar.update(SimpleNamespace(**row))
                if row["state"] == "done":
                    bar.finish()
                    return row["state"]
                if row["state"] in ("failed", "cancelled", "paused"):
                    bar.interrupted()
                    raise CliError(_ended(row), 1)
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            bar.interrupted()
            raise CliError(
                f"Stopped following; mlxui goes on downloading {repo_id} "
                "(pause or cancel it on the Models page).",
                130,
            ) from None


def _row(api: httpx.Client, repo_id: str) -> dict[str, Any]:
    response = _call(api, "GET", "/api/downloads")
    rows = [r for r in response.json() if r["repo_id"] == repo_id] if response.status_code == 200 else []
    if not rows:
        raise CliError(f"mlxui no longer lists the download of {repo_id} ({_message(response)}).", 1)
    return rows[0]


def _call(api: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return api.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise CliError(f"Lost mlxui at {api.base_url} while downloading: {exc}", 1) from exc


def _ended(row: dict[str, Any]) -> str:
    if row["state"] == "paused":
        return f"The download of {row['repo_id']} was paused in mlxui; resume it there or pull again."
    if row["state"] == "cancelled":
        return f"The download of {row['repo_id']} was cancelled in mlxui."
    return row.get("error") or f"The download of {row['repo_id']} failed."


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
