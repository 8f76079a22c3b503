"""The app's download service: a queue of model downloads the UI binds to and a restart resumes.

`DownloadManager` runs `pull.download_repo` for each queued repo (`concurrency` at a time), with
pause/resume/cancel/retry, one bindable `DownloadState` per repo and one `Download` row per repo,
so a restart (even after kill -9) continues from the bytes on disk.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from mlxui.hub import cache
from mlxui.hub.bandwidth import RateLimiter
from mlxui.hub.download_settings import DownloadSettings
from mlxui.hub.errors import DownloadError, HubError
from mlxui.hub.pull import (
    DiskFree,
    Progress,
    RetryPolicy,
    SpeedMeter,
    Transfer,
    default_disk_free,
    download_repo,
)
from mlxui.hub.repo_id import check_repo_id, check_revision
from mlxui.hub.transfer import Hub
from mlxui.state import ACTIVE_PHASES, DownloadState

log = logging.getLogger(__name__)

Listener = Callable[[], None]
DoneHook = Callable[[DownloadState], Awaitable[None] | None]
T = TypeVar("T")


class DownloadManager:
    """The app's downloads: a FIFO queue, `concurrency` repos at a time, one task per repo.

    Progress reaches the UI through each `DownloadState` (bindable); `on_change` callbacks run
    when downloads are added or forgotten; `on_done` callbacks get the state of each finished
    download (so the Local list can refresh at once); both return a function that unsubscribes.
    With `db=True` every download has a `Download` row (written on each state change and at most
    every `db_interval` s while moving), which `restore()` reads at start-up. Call `shutdown()`
    before closing the database.
    """

    def __init__(
        self,
        cache_dir: Path,
        endpoint: str,
        token_provider: Callable[[], str | None] = lambda: None,
        *,
        db: bool = True,
        concurrency: int = 1,
        stall_timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        disk_free: DiskFree = default_disk_free,
        publish_interval: float = 0.25,
        db_interval: float = 1.0,
        settings: DownloadSettings | None = None,
        initial_connections: int = 4,
        preallocate: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.endpoint = endpoint
        self.token_provider = token_provider  # asked at every start, so a new token applies on retry
        self.policy = RetryPolicy(
            stall_timeout=stall_timeout, retries=retries, backoff=backoff, backoff_max=backoff_max
        )
        self.disk_free = disk_free
        self.settings = settings or DownloadSettings()  # bandwidth limit and connections, live
        self._initial_connections, self._preallocate = initial_connections, preallocate
        self.downloads: dict[str, DownloadState] = {}  # insertion order = display order
        self._db, self._publish_interval, self._db_interval = db, publish_interval, db_interval
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._limiters: dict[str, RateLimiter] = {}  # each download's own limit, under the global one
        self._saves: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[Listener] = []
        self._done_hooks: list[DoneHook] = []

    # ----- what the UI and the app call --------------------------------------------------------
    def on_change(self, listener: Listener) -> Callable[[], None]:
        """Call `listener()` when a download is added or forgotten (not on progress: that is bound).

        Returns a function that unsubscribes (call it when the component is deleted).
        """
        return _subscribe(self._listeners, listener)

    def on_done(self, hook: DoneHook) -> Callable[[], None]:
        """Call `hook(state)` (may be async) when a download finishes.

        Returns a function that unsubscribes.
        """
        return _subscribe(self._done_hooks, hook)

    async def enqueue(
        self, repo_id: str, revision: str = "main", *, limit_bps: int | None = None
    ) -> DownloadState:
        """Queue a download (raises BadRepoId for a malformed id or revision). Already running: no-op.
        Paused or failed: continues from the bytes on disk. Done: looks for a newer commit.
        `limit_bps`: this download's own bandwidth limit (under the global one); None keeps it."""
        repo_id, revision = check_repo_id(repo_id), check_revision(revision)
        st = self.downloads.get(repo_id)
        if st is not None and limit_bps is not None:
            self._limit(st, limit_bps)
        if st is not None and self._running(repo_id):
            return st
        is_new = st is None
        if st is None:
            st = self.downloads[repo_id] = DownloadState(repo_id=repo_id, revision=revision)
            self._limit(st, limit_bps or 0)
        elif st.revision != revision or st.state in ("done", "cancelled", "failed"):
            # Resolve the revision again (a failure may be a commit that is gone). Paused and
            # restored downloads keep their commit; partial files are named by content anyway.
            st.revision, st.commit = revision, None
        st.error, st.note = None, ""
        await self._set_phase(st, "queued")
        self._start(st)
        if is_new:
            self._notify()
        return st

    def _limit(self, st: DownloadState, limit_bps: int) -> None:
        st.limit_bps = max(0, int(limit_bps))
        limiter = self._limiters.get(st.repo_id)
        if limiter is None:
            self._limiters[st.repo_id] = RateLimiter(st.limit_bps, parent=self.settings.limiter)
        else:
            limiter.set_rate(st.limit_bps)

    async def pause(self, repo_id: str) -> DownloadState:
        """Stop now, keeping partial files; `resume` continues from them."""
        st = self._get(repo_id)
        await self._stop_task(repo_id)
        if st.state in ACTIVE_PHASES:
            await self._set_phase(st, "paused")
        return st

    async def resume(self, repo_id: str) -> DownloadState:
        st = self._get(repo_id)
        return await self.enqueue(repo_id, st.revision)

    async def retry(self, repo_id: str) -> DownloadState:
        return await self.resume(repo_id)

    async def cancel(self, repo_id: str) -> DownloadState:
        """Stop and delete what this download left: partial files and an unfinished snapshot."""
        st = self._get(repo_id)
        await self._stop_task(repo_id)
        if st.state == "done":
            return st
        await asyncio.to_thread(cache.discard_download, self.cache_dir, repo_id, st.commit)
        st.bytes_done, st.files_done, st.current_file = 0, 0, ""
        st.state, st.speed_bps, st.eta_s, st.note = "cancelled", 0.0, None, ""
        await self._delete_row(repo_id)
        return st

    async def forget(self, repo_id: str) -> None:
        """Drop a finished, failed, paused or cancelled download from the list (files stay)."""
        if self._running(repo_id) or repo_id not in self.downloads:
            return
        del self.downloads[repo_id]
        self._limiters.pop(repo_id, None)
        await self._delete_row(repo_id)
        self._notify()

    async def delete_model(self, repo_id: str) -> int:
        """Delete a model from the cache (stopping and forgetting any download of it); bytes freed."""
        if repo_id in self.downloads:
            await self._stop_task(repo_id)
            del self.downloads[repo_id]
            self._limiters.pop(repo_id, None)
            await self._delete_row(repo_id)
            self._notify()
        return await asyncio.to_thread(cache.delete_repo, self.cache_dir, repo_id)

    async def wait(self, repo_id: str, timeout: float | None = None) -> DownloadState:
        """Until the download of `repo_id` stops running (done, failed, paused ...) or `timeout`."""
        task = self._tasks.get(repo_id)
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)
        return self._get(repo_id)

    async def restore(self) -> None:
        """At start-up: list the downloads of the last run; queued and running ones continue."""
        if not self._db:
            return
        from mlxui.db.models import Download

        for row in await Download.all().order_by("id"):
            if row.repo_id in self.downloads:
                continue
            st = DownloadState(
                repo_id=row.repo_id, revision=row.revision, state=row.state, commit=row.commit,
                bytes_done=row.bytes_done, bytes_total=row.bytes_total, error=row.error,
            )  # fmt: skip
            self.downloads[row.repo_id] = st
            try:
                check_repo_id(row.repo_id), check_revision(row.revision)
            except HubError as exc:
                st.state, st.error = "failed", exc.message
                continue
            if st.state in ACTIVE_PHASES:
                st.state = "queued"
                self._start(st)
        self._notify()

    async def shutdown(self) -> None:
        """Stop every task; rows keep their phase, so `restore()` resumes them next start."""
        running = [st for r in list(self._tasks) if (st := self.downloads.get(r)) is not None]
        await asyncio.gather(*(self._stop_task(st.repo_id) for st in running))
        if self._saves:
            await asyncio.wait(set(self._saves.values()))
        for st in running:
            st.speed_bps, st.eta_s = 0.0, None
            await self._save(st)

    # ----- the task behind each download ----------------------------------------------------------
    def _start(self, st: DownloadState) -> None:
        task = asyncio.create_task(self._run(st), name=f"download {st.repo_id}")
        self._tasks[st.repo_id] = task
        task.add_done_callback(
            lambda t: self._tasks.pop(st.repo_id, None) if self._tasks.get(st.repo_id) is t else None
        )

    async def _run(self, st: DownloadState) -> None:
        publisher = _Publisher(self, st)
        ticker = asyncio.create_task(publisher.tick(), name=f"download speed {st.repo_id}")
        try:
            async with self._slots:
                await self._set_phase(st, "downloading")
                hub = Hub(endpoint=self.endpoint, token=self.token_provider())
                if st.repo_id not in self._limiters:
                    self._limit(st, st.limit_bps)
                transfer = Transfer(
                    max_connections=self.settings.max_connections, limiter=self._limiters[st.repo_id],
                    initial_connections=self._initial_connections, preallocate=self._preallocate,
                )  # fmt: skip
                await download_repo(
                    st.repo_id, st.revision, cache_dir=self.cache_dir, hub=hub, commit=st.commit,
                    policy=self.policy, disk_free=self.disk_free, on_progress=publisher.on_progress,
                    transfer=transfer,
                )  # fmt: skip
        except HubError as exc:
            st.error = exc.message
            await self._set_phase(st, "failed")
            return
        except Exception as exc:  # a bug must still end as a visible failure, never a stuck "downloading"
            log.exception("download of %s crashed", st.repo_id)
            st.error = f"Internal error: {exc!r}"
            await self._set_phase(st, "failed")
            return
        finally:
            ticker.cancel()
        st.bytes_done, st.current_file, st.note = st.bytes_total, "", ""
        await self._set_phase(st, "done")
        for hook in list(self._done_hooks):
            try:
                result = hook(st)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one broken subscriber must not keep the others from hearing about it
                log.exception("a done-hook failed for %s", st.repo_id)

    async def _stop_task(self, repo_id: str) -> None:
        task = self._tasks.get(repo_id)
        if task is None or task.done():
            return
        task.cancel()
        # Cancellation only unwinds open files and sockets; 10 s is far more than it needs.
        await asyncio.wait({task}, timeout=10)

    def _save_soon(self, st: DownloadState) -> None:
        """A progress write in the background; at most one per download in flight."""
        if st.repo_id in self._saves:
            return
        self._saves[st.repo_id] = task = asyncio.create_task(self._save(st))
        task.add_done_callback(lambda _t: self._saves.pop(st.repo_id, None))

    # ----- bookkeeping ------------------------------------------------------------------------------
    def _get(self, repo_id: str) -> DownloadState:
        st = self.downloads.get(repo_id)
        if st is None:
            raise DownloadError(f"There is no download of {repo_id}.")
        return st

    def _running(self, repo_id: str) -> bool:
        task = self._tasks.get(repo_id)
        return task is not None and not task.done()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    async def _set_phase(self, st: DownloadState, phase: str) -> None:
        st.state = phase
        if phase != "downloading":
            st.speed_bps, st.eta_s, st.connections = 0.0, None, 0
        pending = self._saves.get(st.repo_id)
        if pending is not None:  # an older progress write must not land after this one
            await asyncio.wait({pending})
        await self._save(st)

    async def _save(self, st: DownloadState) -> None:
        if not self._db:
            return
        from tortoise.exceptions import BaseORMException

        from mlxui.db.models import Download

        fields = {
            "revision": st.revision, "commit": st.commit, "state": st.state,
            "bytes_done": st.bytes_done, "bytes_total": st.bytes_total, "error": st.error,
        }  # fmt: skip
        try:
            await Download.update_or_create(defaults=fields, repo_id=st.repo_id)
        except BaseORMException as exc:  # the download goes on; only its restart record is stale
            log.warning("could not record the download of %s: %s", st.repo_id, exc)

    async def _delete_row(self, repo_id: str) -> None:
        if not self._db:
            return
        from mlxui.db.models import Download

        await Download.filter(repo_id=repo_id).delete()


def _subscribe(callbacks: list[T], callback: T) -> Callable[[], None]:
    """Add `callback` to `callbacks`; the returned function takes it out again (twice is harmless)."""
    callbacks.append(callback)

    def unsubscribe() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return unsubscribe


class _Publisher:
    """Copies a download's Progress into its DownloadState: byte counts at most every
    `publish_interval` s (bindings fire per change), speed and ETA once a second (also while no
    byte arrives, so a stall shows as a falling speed), the DB row at most every `db_interval` s."""

    def __init__(self, manager: DownloadManager, st: DownloadState) -> None:
        self.manager, self.st = manager, st
        self.meter = SpeedMeter()
        self.bytes_done = st.bytes_done
        self.published = 0.0
        self.saved = time.monotonic()

    def on_progress(self, p: Progress) -> None:
        st = self.st
        st.commit, st.bytes_total = p.commit, p.bytes_total
        st.files_total, st.files_done = p.files_total, p.files_done
        st.current_file, st.note = p.current_file, p.note
        st.connections = p.connections
        self.bytes_done = p.bytes_done
        now = time.monotonic()
        if now - self.published >= self.manager._publish_interval or p.bytes_done >= p.bytes_total:
            self.published = now
            st.bytes_done = p.bytes_done
        if now - self.saved >= self.manager._db_interval:
            self.saved = now
            self.manager._save_soon(st)

    async def tick(self) -> None:
        while True:  # cancelled by _run when the download stops
            await asyncio.sleep(1.0)
            if self.st.state != "downloading" or not self.st.bytes_total:
                continue
            speed = self.meter.update(self.bytes_done)
            self.st.speed_bps = speed
            self.st.eta_s = self.meter.eta(self.st.bytes_total - self.bytes_done)
