"""Getting one repo into the HF cache, resumably: the engine under `DownloadManager` and `mlxui models pull`.

`download_repo` plans the repo with huggingface_hub, checks the free disk space, then fetches the
files over several connections at once (fetcher.Fetcher: ranges of large files in parallel, small
files first), with bounded exponential backoff on transient errors: a dropped connection, a stall,
a 5xx, an unreachable Hub. Every retry continues from the ranges on disk. Finally it writes
refs/<revision>, so the model looks exactly as if huggingface_hub had downloaded it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from mlxui.hub import cache
from mlxui.hub.bandwidth import RateLimiter
from mlxui.hub.errors import HUB_ERRORS, DownloadError, HubError, hub_error
from mlxui.hub.fetcher import Fetcher, FetchOptions, FetchReport
from mlxui.hub.file_job import FileJob
from mlxui.hub.repo_id import check_repo_id, check_revision
from mlxui.hub.transfer import Hub, RepoPlan, bytes_on_disk, plan_repo

log = logging.getLogger(__name__)

# An attempt that moved at least this much was not a dead end: the retry budget starts over, so a
# long download over a flaky line is not failed by drops spread over hours.
PROGRESS_RESETS_RETRIES = 1 << 20

DiskFree = Callable[[Path], int]
T = TypeVar("T")


@dataclass
class Progress:
    """Where one download stands; handed to `on_progress` after every change (often: per chunk)."""

    repo_id: str
    commit: str | None = None
    bytes_done: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0
    current_file: str = ""
    connections: int = 0  # connections fetching now
    note: str = ""  # e.g. "The connection to the Hub dropped. Retrying in 2 s (attempt 2 of 6)."


@dataclass(frozen=True)
class RetryPolicy:
    stall_timeout: float = 30.0  # seconds without a byte before a transfer counts as stalled
    retries: int = 5  # further attempts after a transient failure (dropped, stalled, 5xx, offline)
    backoff: float = 1.0  # first pause between attempts; doubles each time ...
    backoff_max: float = 60.0  # ... up to this
    connect_timeout: float = 15.0


@dataclass(frozen=True)
class Transfer:
    """How the bytes move: connections per download, the shared bandwidth limit, preallocation."""

    max_connections: int = 16
    initial_connections: int = 4
    limiter: RateLimiter = field(default_factory=RateLimiter)
    preallocate: bool = True


def default_disk_free(path: Path) -> int:
    """Free bytes on the file system that holds `path` (or would, once created)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def format_size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


async def download_repo(
    repo_id: str,
    revision: str = "main",
    *,
    cache_dir: Path,
    hub: Hub,
    commit: str | None = None,
    policy: RetryPolicy = RetryPolicy(),
    disk_free: DiskFree = default_disk_free,
    on_progress: Callable[[Progress], None] | None = None,
    transfer: Transfer | None = None,
) -> Path:
    """Download `repo_id` at `revision` (or the pinned `commit`, when resuming) into `cache_dir`.

    Returns the snapshot folder. Raises a HubError (errors.py) with a user-facing message: its type
    says what went wrong (GatedRepo, RepoNotFound, BadRepoId, HubUnavailable, DownloadError ...).
    Cancelling the task (or Ctrl-C) stops at once and leaves partial files for the next call to continue.
    """
    repo_id, revision = check_repo_id(repo_id), check_revision(revision)
    try:
        return await _download(
            repo_id, revision, Path(cache_dir), hub, commit, policy, disk_free, on_progress,
            transfer or Transfer(),
        )  # fmt: skip
    except HubError:
        raise
    except HUB_ERRORS as exc:  # the steps outside the retried ones: surveying, preparing the cache
        raise _describe(exc, repo_id, hub, policy) from exc


async def _download(
    repo_id: str,
    revision: str,
    cache_dir: Path,
    hub: Hub,
    commit: str | None,
    policy: RetryPolicy,
    disk_free: DiskFree,
    on_progress: Callable[[Progress], None] | None,
    transfer: Transfer,
) -> Path:
    progress = Progress(repo_id)
    emit = on_progress or (lambda _p: None)
    retry = _Retrier(policy, repo_id, hub, progress, emit)

    plan = await retry.run(lambda: plan_repo(hub, repo_id, commit or revision))
    plan = replace(plan, revision=revision)  # a pinned commit resumes; the ref still names the branch
    survey = await asyncio.to_thread(lambda: [(f, *bytes_on_disk(cache_dir, plan, f)) for f in plan.files])
    progress.commit, progress.files_total = plan.commit, len(plan.files)
    progress.bytes_total = plan.total_bytes
    progress.bytes_done = sum(done for _f, done, _complete in survey)
    progress.files_done = sum(1 for *_x, complete in survey if complete)
    emit(progress)

    needed, free = plan.total_bytes - progress.bytes_done, disk_free(cache_dir)
    if needed > free:  # before the first byte, so a full disk never leaves a broken file behind
        raise DownloadError(f"Not enough disk space: needs {format_size(needed)}, {format_size(free)} free.")
    await asyncio.to_thread(_prepare_snapshot, cache_dir, plan)

    def on_report(r: FetchReport) -> None:
        progress.bytes_done += r.moved
        progress.files_done += r.files_done
        if r.connections or r.current:
            progress.connections, progress.current_file = r.connections, r.current
        if r.note is not None:
            progress.note = r.note
        emit(progress)

    options = FetchOptions(
        max_connections=max(1, transfer.max_connections),
        initial_connections=max(1, transfer.initial_connections),
        preallocate=transfer.preallocate,
        stall_timeout=policy.stall_timeout, connect_timeout=policy.connect_timeout,
        retries=policy.retries, backoff=policy.backoff, backoff_max=policy.backoff_max,
    )  # fmt: skip
    todo = [f for f, _done, complete in survey if not complete]

    async def attempt() -> None:
        jobs = [FileJob(hub, cache_dir, plan, f, preallocate=options.preallocate) for f in todo]
        describe = lambda exc: _describe(exc, repo_id, hub, policy)  # noqa: E731
        done_before = progress.files_done
        try:
            await Fetcher(jobs, options, transfer.limiter, describe, on_report).run()
        except BaseException:
            progress.files_done = done_before  # the next attempt counts the files it finds again
            raise

    if todo:
        await retry.run(attempt)
    progress.connections, progress.note = 0, ""
    await asyncio.to_thread(cache.write_ref, cache_dir, repo_id, revision, plan.commit)
    progress.current_file = ""
    emit(progress)
    return cache.snapshot_dir(cache_dir, repo_id, plan.commit)


async def pull(
    repo_id: str,
    *,
    revision: str = "main",
    cache_dir: Path,
    endpoint: str,
    token: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    policy: RetryPolicy = RetryPolicy(),
    disk_free: DiskFree = default_disk_free,
    transfer: Transfer | None = None,
) -> Path:
    """`mlxui models pull`: download one repo in the foreground; returns its snapshot folder.

    Raises a HubError. Ctrl-C (KeyboardInterrupt / CancelledError) leaves the partial files, and
    the next `pull` of the same repo continues from them.
    """
    hub = Hub(endpoint=endpoint, token=token)
    return await download_repo(
        repo_id,
        revision,
        cache_dir=cache_dir,
        hub=hub,
        policy=policy,
        disk_free=disk_free,
        on_progress=on_progress,
        transfer=transfer,
    )


class SpeedMeter:
    """Bytes per second, smoothed (EWMA with a half-life), sampled at most every `interval` s."""

    def __init__(self, half_life: float = 3.0, interval: float = 0.5) -> None:
        self.half_life, self.interval = half_life, interval
        self.speed = 0.0
        self._last: tuple[float, int] | None = None

    def update(self, bytes_done: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if self._last is None:
            self._last = (now, bytes_done)
            return self.speed
        dt = now - self._last[0]
        if dt < self.interval:
            return self.speed
        rate = max(0, bytes_done - self._last[1]) / dt
        first = self.speed == 0.0
        alpha = 1.0 if first else 1 - 0.5 ** (dt / self.half_life)
        self.speed += alpha * (rate - self.speed)
        self._last = (now, bytes_done)
        return self.speed

    def eta(self, remaining: int) -> float | None:
        return remaining / self.speed if self.speed > 0 else None


class _Retrier:
    """Runs one step (plan, or one file) with bounded exponential backoff on transient errors."""

    def __init__(
        self,
        policy: RetryPolicy,
        repo_id: str,
        hub: Hub,
        progress: Progress,
        emit: Callable[[Progress], None],
    ) -> None:
        self.policy, self.repo_id, self.hub, self.progress, self.emit = policy, repo_id, hub, progress, emit

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        failures = 0
        while True:
            start = self.progress.bytes_done
            try:
                return await attempt()
            except HUB_ERRORS as exc:
                err = _describe(exc, self.repo_id, self.hub, self.policy)
                cause = None if err is exc else exc
                if not err.transient:
                    raise err from cause
                if self.progress.bytes_done - start >= PROGRESS_RESETS_RETRIES:
                    failures = 0
                failures += 1
                if failures > self.policy.retries:
                    raise DownloadError(f"{err.message} Gave up after {failures} attempts.") from cause
                delay = min(self.policy.backoff * 2 ** (failures - 1), self.policy.backoff_max)
                log.info("%s: %s retrying in %.1f s", self.repo_id, err.message, delay)
                self.progress.note = f"{err.message} Retrying in {delay:.{1 if delay < 10 else 0}f} s (attempt {failures + 1} of {self.policy.retries + 1})."
                self.emit(self.progress)
                await asyncio.sleep(delay)
                self.progress.note = ""
                self.emit(self.progress)


def _describe(exc: BaseException, repo_id: str, hub: Hub, policy: RetryPolicy) -> HubError:
    return hub_error(exc, endpoint=hub.endpoint, repo_id=repo_id, stall_timeout=policy.stall_timeout)


def _prepare_snapshot(cache_dir: Path, plan: RepoPlan) -> None:
    cache.snapshot_dir(cache_dir, plan.repo_id, plan.commit).mkdir(parents=True, exist_ok=True)
    cache.tag_cache_dir(cache_dir)
    cache.write_tree_listing(cache_dir, plan.repo_id, plan.commit, plan.tree_listing())
