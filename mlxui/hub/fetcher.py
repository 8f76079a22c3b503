"""The files of one repo over several connections: worker threads fetch ranges, the event loop
coordinates (progress, checksums, adding connections, flushing maps). docs/architecture.md §11.

Bytes move in threads (blocking httpx, each network read written with `pwrite`), so the event loop only wakes
ten times a second per download, whatever the speed. Connections start at `initial` and grow while
the total speed grows, up to `max_connections`; all share one `RateLimiter`. Stopping (pause,
cancel, Ctrl-C) cuts every socket and waits for every thread before the partial files are closed,
so no thread ever writes after `fetch_all` returned.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpcore._sync.http11
import httpx

from mlxui.hub.bandwidth import RateLimiter
from mlxui.hub.errors import HUB_ERRORS, DownloadError, HubError, status_error
from mlxui.hub.file_job import FileJob
from mlxui.hub.segments import Scheduler, Segment

log = logging.getLogger(__name__)

TICK_S = 0.1
GROW_EVERY_S = 0.5
GROW_BY = 4
GROW_IF = 1.10  # add connections while the total speed still grows by at least 10 %
SYNC_EVERY_S = 2.0
JOIN_S = 3.0
# httpcore reads at most 64 KB per recv (a class constant, no option). A connection thread then
# takes the GIL back ~16 times per MB; with 1 MiB reads a single connection on loopback went from
# 1.04-1.13 s to 0.62-0.63 s for 210 MB here. Only synchronous httpx clients read this constant:
# ours and huggingface_hub's metadata calls (the gateway's async client has its own).
READ_BYTES = 1 << 20
if getattr(httpcore._sync.http11.HTTP11Connection, "READ_NUM_BYTES", READ_BYTES) < READ_BYTES:
    httpcore._sync.http11.HTTP11Connection.READ_NUM_BYTES = READ_BYTES
PROGRESS_RESETS_RETRIES = 1 << 20


@dataclass(frozen=True)
class FetchOptions:
    max_connections: int = 16
    initial_connections: int = 4
    preallocate: bool = True
    stall_timeout: float = 30.0
    connect_timeout: float = 15.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0


@dataclass
class FetchReport:
    """What the coordinator hands to its caller on each tick."""

    moved: int = 0  # bytes written since the last report (negative when a file started over)
    files_done: int = 0  # files finished since the last report
    connections: int = 0
    current: str = ""
    note: str | None = None  # None: unchanged


class Fetcher:
    def __init__(
        self,
        jobs: list[FileJob],
        options: FetchOptions,
        limiter: RateLimiter,
        describe: Callable[[BaseException], HubError],
        report: Callable[[FetchReport], None],
    ) -> None:
        self.jobs, self.options, self.limiter = jobs, options, limiter
        self.describe, self.report = describe, report
        self.sched = Scheduler(jobs, options.max_connections)
        self.stop = threading.Event()
        self.error: HubError | None = None
        self._threads: list[threading.Thread] = []
        self._responses: dict[int, httpx.Response] = {}
        self._lock = threading.Lock()
        self._failures, self._calm_at, self._moved_at_failure = 0, 0.0, 0
        self._note = ""
        self._client = httpx.Client(
            timeout=httpx.Timeout(options.stall_timeout, connect=options.connect_timeout),
            limits=httpx.Limits(max_connections=options.max_connections * 2),
            follow_redirects=True,
        )

    # ----- the coordinator (event loop) -----------------------------------------------------------
    async def run(self) -> None:
        """Fetch every job's missing ranges, verify and place each file. Raises a HubError."""
        open_jobs: list[FileJob] = []
        hashing: dict[FileJob, asyncio.Task[int]] = {}
        try:
            pending = []
            for job in self.jobs:
                complete = await asyncio.to_thread(job.open)
                open_jobs.append(job)
                if complete:
                    self.report(FetchReport(files_done=1))
                else:
                    self.sched.add(job)
                    pending.append(job)
            self._grow(min(self.options.initial_connections, self.options.max_connections))
            await self._coordinate(pending, hashing)
        finally:
            self.stop.set()
            await self._join(hashing)
            await asyncio.to_thread(lambda: [job.release() for job in open_jobs])

    async def _coordinate(self, pending: list[FileJob], hashing: dict[FileJob, asyncio.Task[int]]) -> None:
        reported, last_grow, last_sync = 0, time.monotonic(), time.monotonic()
        grown_from, speed_mark = 0.0, self.sched.moved
        while pending:
            await asyncio.sleep(TICK_S)
            if self.error is not None:
                raise self.error
            moved = self.sched.moved
            note, self._note_changed = (self._note, False) if self._note_changed else (None, False)
            busy = self.sched.busy_files()
            self.report(FetchReport(moved - reported, 0, len(self._threads), busy[0] if busy else "", note))
            reported = moved
            for job in pending:
                task = hashing.get(job)
                if task is not None and task.done():
                    del hashing[job]
                    task.result()  # a read error in the hasher surfaces here
                if job not in hashing and job.map.prefix() > job.hashed:
                    hashing[job] = asyncio.create_task(asyncio.to_thread(job.hash_some))
            for job in [j for j in pending if j not in hashing and self.sched.idle(j) and j.map.complete()]:
                pending.remove(job)
                await self._finish(job, pending)
            now = time.monotonic()
            if now - last_grow >= GROW_EVERY_S:
                speed = (moved - speed_mark) / (now - last_grow)
                # more connections help against per-connection caps, not against our own limit
                if (
                    speed > grown_from * GROW_IF
                    and self.sched.in_flight() >= len(self._threads)
                    and not self.limiter.limited()
                ):
                    self._grow(min(len(self._threads) + GROW_BY, self.options.max_connections))
                    grown_from = speed
                last_grow, speed_mark = now, moved
            if now - last_sync >= SYNC_EVERY_S:
                last_sync = now
                await asyncio.to_thread(lambda: [j.sync() for j in pending])

    async def _finish(self, job: FileJob, pending: list[FileJob]) -> None:
        while job.hashed < job.f.size:  # the last bytes: a fraction of a second behind the transfer
            if not await asyncio.to_thread(job.hash_some):
                break
        if job.verified():
            await asyncio.to_thread(job.finish)
            self.report(FetchReport(files_done=1))
            return
        # Proven wrong: keeping it would poison every retry. Only this file starts over.
        lost = job.map.done()
        await asyncio.to_thread(job.start_over)
        self.report(FetchReport(moved=-lost))
        message = f"{job.f.path} arrived corrupted (checksum mismatch); downloading it again."
        self._failed(DownloadError(message, transient=True))
        self.sched.add(job)
        pending.append(job)

    def _grow(self, target: int) -> None:
        while len(self._threads) < target and not self.stop.is_set():
            t = threading.Thread(target=self._work, args=(len(self._threads),), daemon=True,
                                 name=f"download connection {len(self._threads) + 1}")  # fmt: skip
            self._threads.append(t)
            t.start()

    async def _join(self, hashing: dict[FileJob, asyncio.Task[int]]) -> None:
        """Cut every socket, then wait for every thread and hash task (cancel-proof)."""
        with self._lock:
            responses = list(self._responses.values())
        for response in responses:
            _cut(response)
        waiting = asyncio.ensure_future(asyncio.to_thread(self._join_threads))
        tasks = [waiting, *hashing.values()]
        cancelled = False
        while not all(t.done() for t in tasks):
            try:
                await asyncio.shield(asyncio.wait(tasks))
            except asyncio.CancelledError:
                cancelled = True  # finish the wait anyway: no thread may outlive this call
        for t in hashing.values():
            if not t.cancelled() and t.exception() is not None:
                log.debug("hashing ended with %r while stopping", t.exception())
        await asyncio.to_thread(self._client.close)
        if cancelled:
            raise asyncio.CancelledError

    def _join_threads(self) -> None:
        """Bounded: a thread still waiting for a server's first byte cannot be woken; it ends with
        its timeout, and the closed partial files (FileJob's gate) keep it from writing anything."""
        deadline = time.monotonic() + JOIN_S
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # ----- one connection (a thread) --------------------------------------------------------------
    def _work(self, idx: int) -> None:
        while not self.stop.is_set():
            self._wait_for_calm()
            seg = self.sched.take(len(self._threads))
            if seg is None:
                self.stop.wait(0.05)  # files finishing, or a start-over about to queue ranges
                continue
            try:
                self._fetch(idx, seg)
            except (*HUB_ERRORS, HubError) as exc:
                if self.stop.is_set():
                    break  # stopping: a closed file or a cut socket is expected
                err = self.describe(exc)
                if err.transient:
                    self._failed(err)
                else:
                    self.error = err
                    self.stop.set()
            finally:
                with self._lock:
                    self._responses.pop(idx, None)
                self.sched.release(seg)

    def _fetch(self, idx: int, seg: Segment) -> None:
        job = seg.job
        job.resolve()
        headers = job.headers() | {"Range": f"bytes={seg.pos}-{seg.end - 1}"}
        with self._client.stream("GET", job.location, headers=headers) as response:
            with self._lock:
                self._responses[idx] = response
            if self.stop.is_set():
                return
            if not self._accept(seg, response):
                return
            # Each network read (~64 KB) is written and recorded at once: a kill -9 loses only
            # the bytes in flight, and a stalled connection has nothing waiting in memory.
            for chunk in response.iter_raw():
                self.limiter.take(len(chunk), self.stop)  # before writing: progress follows the limit
                if not self._write(seg, chunk):
                    return  # the file became one stream on another connection, or we stop
        if seg.pos < seg.end:
            raise DownloadError(f"The connection closed before the end of {job.f.path}.", transient=True)

    def _write(self, seg: Segment, chunk: bytes) -> bool:
        """Write what `chunk` holds of `seg`; False: stop reading this answer."""
        n = self.sched.clip(seg, len(chunk))
        if n:
            seg.job.write(seg.pos, memoryview(chunk)[:n])
            self.sched.advance(seg, n)
        return n == len(chunk) and not self.stop.is_set()

    def _accept(self, seg: Segment, response: httpx.Response) -> bool:
        """Check the answer's status and range; False: nothing for this connection to read."""
        job, status = seg.job, response.status_code
        if status in (401, 403, 410) and job.location != job.url:
            job.resolve(again=True)  # the content host's signed URL expired: ask the Hub for a new one
            raise DownloadError(f"The download link for {job.f.path} expired.", transient=True)
        if status == 416:
            raise DownloadError(f"The Hub refused a part of {job.f.path}.", transient=True)
        if status not in (200, 206):
            raise status_error(status, job.plan.repo_id, downloading=True)
        if status == 200:  # Range ignored: the body is the whole file
            return self.sched.go_whole(seg)
        start = _range_start(response)
        if start != seg.pos:
            raise DownloadError(f"The Hub answered the wrong part of {job.f.path}.", transient=True)
        return True

    # ----- transient failures: one backoff for the whole download --------------------------------
    def _failed(self, err: HubError) -> None:
        policy = self.options
        with self._lock:
            now = time.monotonic()
            if now < self._calm_at:
                return  # the same outage, seen by another connection: counted once
            if self.sched.moved - self._moved_at_failure >= PROGRESS_RESETS_RETRIES:
                self._failures = 0
            self._failures += 1
            self._moved_at_failure = self.sched.moved
            if self._failures > policy.retries:
                self.error = DownloadError(f"{err.message} Gave up after {self._failures} attempts.")
                self.stop.set()
                return
            delay = min(policy.backoff * 2 ** (self._failures - 1), policy.backoff_max)
            self._calm_at = now + delay
            log.info("%s retrying in %.1f s", err.message, delay)
            attempt = f"attempt {self._failures + 1} of {policy.retries + 1}"
            self._set_note(f"{err.message} Retrying in {delay:.{1 if delay < 10 else 0}f} s ({attempt}).")

    def _wait_for_calm(self) -> None:
        delay = self._calm_at - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
        elif self._note and self._calm_at:
            with self._lock:
                if time.monotonic() >= self._calm_at and self._note:
                    self._set_note("")

    def _set_note(self, note: str) -> None:
        self._note, self._note_changed = note, True

    _note_changed = False


def _range_start(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Range", "")
    if not value.startswith("bytes "):
        return None
    head = value[6:].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _cut(response: httpx.Response) -> None:
    """Wake a thread blocked reading `response`: shut its socket down (closing is not enough)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return  # already closed: its reader has woken up anyway
