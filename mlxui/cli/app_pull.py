"""`mlxui models pull` while the app runs: the download goes to the app's download manager (so it
shows in the Models page's Downloads tile and survives this terminal), and the CLI follows its
progress through /api/downloads, as `ollama pull` follows its server."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Protocol

from mlxui.app_client import AppApiError, AppClient
from mlxui.cli.common import CliError, app_client
from mlxui.config import Config

POLL_S = 0.5


class Bar(Protocol):
    def update(self, progress: Any) -> None: ...
    def finish(self) -> None: ...
    def interrupted(self) -> None: ...


def app_is_running(config: Config) -> bool:
    """True when an mlxui app answers at the configured address (and says it is mlxui)."""
    try:
        app_client(config).status(timeout=2.0)
    except AppApiError:
        return False
    return True


def pull_through_app(
    config: Config, repo_id: str, revision: str, bar: Bar, *, limit: int | None = None
) -> str:
    """Start (or join) the app's download of `repo_id` and follow it to the end: its final state,
    "done"; CliError for a failed, cancelled or paused download. Ctrl+C stops following only."""
    api = app_client(config)
    # The app's refusal (a bad id, a failed start) reaches the user as its own sentence.
    wanted: dict[str, Any] = {"repo_id": repo_id, "revision": revision}
    if limit is not None:
        wanted["limit"] = limit
    api.call("POST", "/api/downloads", json=wanted, timeout=10.0)
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
            f"Stopped following; mlxui goes on downloading {repo_id} (pause or cancel it on the Models page).",
            130,
        ) from None


def _row(api: AppClient, repo_id: str) -> dict[str, Any]:
    try:
        rows = [r for r in api.call("GET", "/api/downloads", timeout=10.0) if r["repo_id"] == repo_id]
    except AppApiError as exc:
        if not exc.unreachable:
            raise
        raise CliError(f"Lost mlxui at {api.base_url} while following the download of {repo_id}.", 1) from exc
    if not rows:
        raise CliError(f"mlxui no longer lists the download of {repo_id}.", 1)
    return rows[0]


def _ended(row: dict[str, Any]) -> str:
    if row["state"] == "paused":
        return f"The download of {row['repo_id']} was paused in mlxui; resume it there or pull again."
    if row["state"] == "cancelled":
        return f"The download of {row['repo_id']} was cancelled in mlxui."
    return row.get("error") or f"The download of {row['repo_id']} failed."
