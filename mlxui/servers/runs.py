"""Run records: what lets a restarted mlxui re-adopt the servers the last session left running.

While a server runs, its profile row holds `run_pid`, `run_started_at` (psutil create_time),
`run_cmdline` and `run_port`; a model served without a profile keeps the same four facts in the
setting MODEL_RUNS_SETTING, under its model reference. A record is trusted only when all three identity facts still
match a live process; otherwise it is stale and cleared, and the process it names is left alone.
Token counters of kept servers travel through the setting KEPT_RUNS_SETTING.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psutil

from mlxui.db.models import ServerProfile
from mlxui.db.settings import get_setting, set_setting
from mlxui.servers.model_defaults import MODEL_RUNS_SETTING
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.profiles import Profile

logger = logging.getLogger(__name__)

KEPT_RUNS_SETTING = "servers.kept_runs"  # {profile name: counters} of servers left running at quit
_START_TIME_SLACK_S = 1.0  # create_time is derived from clock ticks; a reused pid differs by far more


async def save_run_record(profile: Profile, server: ManagedServer | None) -> None:
    """Record `server`'s process for `profile`, or clear the record (server None). Callers
    serialise these writes (the supervisor's lock): the implicit records share one setting."""
    record = {
        "run_pid": server.pid if server else None,
        "run_started_at": server.create_time if server else None,
        "run_cmdline": server.cmdline if server else None,
        "run_port": server.port if server else None,
    }
    if not profile.implicit:
        await ServerProfile.filter(id=profile.id).update(**record)
        return
    records: dict[str, Any] = dict(await get_setting(MODEL_RUNS_SETTING, None) or {})
    if server is None:
        if records.pop(profile.model, None) is None:
            return
    else:
        records[profile.model] = {key.removeprefix("run_"): value for key, value in record.items()}
    await set_setting(MODEL_RUNS_SETTING, records)


async def model_run_records() -> dict[str, dict[str, Any]]:
    """The saved run records of models served without a profile, by model reference."""
    records = await get_setting(MODEL_RUNS_SETTING, None)
    return dict(records) if isinstance(records, dict) else {}


def same_process(profile: Profile) -> bool:
    """Is the recorded pid still the server we started (same start time and command line)?

    Blocking (reads /proc): call it from a thread.
    """
    if profile.run_pid is None or profile.run_started_at is None or not profile.run_cmdline:
        return False
    try:
        proc = psutil.Process(profile.run_pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            same_start = abs(proc.create_time() - profile.run_started_at) < _START_TIME_SLACK_S
            return same_start and proc.cmdline() == profile.run_cmdline
    except psutil.Error:
        return False


def kept_counters(server: ManagedServer) -> dict[str, Any]:
    m = server.metrics
    return {
        "prompt_tokens": m.prompt_tokens_total,
        "completion_tokens": m.completion_tokens_total,
        "requests": m.requests,
        "on_demand": server.on_demand,
    }


def restore_counters(server: ManagedServer, kept: dict[str, Any]) -> None:
    m = server.metrics
    m.prompt_tokens_total = int(kept.get("prompt_tokens", 0))
    m.completion_tokens_total = int(kept.get("completion_tokens", 0))
    m.requests = int(kept.get("requests", 0))
    server.on_demand = bool(kept.get("on_demand", False))


async def readopt(server: ManagedServer, profile: Profile, kept: dict[str, Any], timeout: float) -> bool:
    """Adopt the process `profile`'s run record names, if it is still that server.

    Returns False for a stale record (the caller clears it). A live server that fails its
    warm-up is stopped and shown as FAILED; its record is cleared by that transition.
    """
    if not await asyncio.to_thread(same_process, profile) or profile.run_port is None:
        logger.info(
            "server %s: recorded pid %s is no longer its server; clearing", profile.name, profile.run_pid
        )
        return False
    assert profile.run_pid is not None and profile.run_cmdline is not None
    logger.info("server %s: re-adopting pid %s on port %s", profile.name, profile.run_pid, profile.run_port)
    try:
        await server.adopt(profile.run_pid, profile.run_port, profile.run_cmdline, timeout)
    except psutil.Error as exc:  # it exited since the check: an ordinary stale record
        logger.info("server %s: pid %s exited before re-adoption: %s", profile.name, profile.run_pid, exc)
        return False
    except ServerError as exc:
        logger.warning("server %s: re-adoption failed: %s", profile.name, exc)
        return True
    restore_counters(server, kept)
    return True
