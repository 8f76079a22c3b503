"""One file of a parallel download: its partial file, finished-range map, checksum and URL.

Workers (threads) write ranges into the partial file with `write()`; the coordinator hashes the
contiguous prefix as it grows (`hash_some()`, in a worker thread), so the checksum is known within
a fraction of a second of the last byte; `finish()` checks it and turns the partial file into the
blob, exactly where huggingface_hub puts it (docs/architecture.md §11).
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import filelock
from huggingface_hub import get_hf_file_metadata

from mlxui.hub import cache
from mlxui.hub.errors import DownloadError
from mlxui.hub.segment_map import SegmentMap
from mlxui.hub.transfer import FilePlan, Hub, RepoPlan

HASH_BLOCK = 8 << 20  # bytes hashed per read; hashlib releases the GIL while it works
RESOLVES_PER_MINUTE = 4  # fresh signed URLs a file may ask for before an expiry counts as an error


class FileJob:
    def __init__(self, hub: Hub, cache_dir: Path, plan: RepoPlan, f: FilePlan, *, preallocate: bool) -> None:
        self.hub, self.plan, self.f = hub, plan, f
        self.url = hub.file_url(plan.repo_id, plan.commit, f.path)
        self.location = self.url  # where the bytes come from: the Hub, or its content host
        self.blob = cache.blob_path(cache_dir, plan.repo_id, f.etag)
        self.partial = cache.partial_path(cache_dir, plan.repo_id, f.etag)
        self.pointer = cache.pointer_path(cache_dir, plan.repo_id, plan.commit, f.path)
        self._lock_file = cache.lock_path(cache_dir, plan.repo_id, f.etag)
        self.map = SegmentMap(self.partial, f.size)
        self.preallocate = preallocate
        self.whole = False  # the server ignores Range for this file: one stream from byte 0
        self.resolved = threading.Event()
        self.resolve_lock = threading.Lock()
        self._resolves: list[float] = []
        self._fd: int | None = None
        self._gate = threading.Lock()  # writes and close never overlap: no write into a closed fd
        self._hash_lock = threading.Lock()  # one thread at a time feeds the digest
        self._flock: filelock.FileLock | None = None
        self._digest = _new_digest(f)
        self.hashed = 0
        self.hashing = False

    # ----- set-up and finish (coordinator, in a worker thread) ------------------------------------
    def open(self) -> bool:
        """Lock the blob and prepare the partial file; True if the file is already complete."""
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        self.blob.parent.mkdir(parents=True, exist_ok=True)
        # The lock huggingface_hub takes too: nobody else writes this partial file meanwhile.
        lock = filelock.FileLock(self._lock_file, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout as exc:
            raise DownloadError(
                f"Another program is downloading {self.f.path} into the same cache.", transient=True
            ) from exc
        self._flock = lock
        if self.blob.exists() and self.blob.stat().st_size == self.f.size:
            cache.link_pointer(self.blob, self.pointer)
            return True
        self.map.load()
        self._fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size != self.f.size:
            self._allocate()
        return False

    def _allocate(self) -> None:
        """Give the partial file its full length; reserve the blocks where the file system can."""
        assert self._fd is not None
        if self.preallocate and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(self._fd, 0, self.f.size)
                return
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise
                # EOPNOTSUPP/EINVAL: a file system without it; a sparse file works as well
        os.ftruncate(self._fd, self.f.size)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Worker threads: the bytes at `offset`, then their record in the map."""
        with self._gate:
            fd = self._fd
            if fd is None:
                raise DownloadError(f"{self.f.path} was closed before a transfer ended.", transient=True)
            view, pos = memoryview(data), offset
            while view:
                n = os.pwrite(fd, view, pos)
                view, pos = view[n:], pos + n
            self.map.add(offset, pos)
        # Bytes that extend the hashed prefix are hashed now, while in memory (no read-back later);
        # if the coordinator's hasher is busy, it reads them back instead.
        if offset == self.hashed and self._hash_lock.acquire(blocking=False):
            try:
                if offset == self.hashed:
                    self._digest.update(data)
                    self.hashed += len(data)
            finally:
                self._hash_lock.release()

    def sync(self) -> None:
        """Flush data, then the map (so the map never names bytes a power cut could lose)."""
        with self._gate:  # a copy of the descriptor: writers do not wait for the flush
            fd = os.dup(self._fd) if self._fd is not None else None
        if fd is None:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.map.sync()

    def hash_some(self, limit: int = 256 << 20) -> int:
        """Hash up to `limit` more bytes of the finished prefix; returns how many (blocking)."""
        start = self.hashed
        with self._hash_lock:
            end = min(self.map.prefix(), self.hashed + limit)
            while self.hashed < end:
                with self._gate:
                    if self._fd is None:
                        break
                    block = os.pread(self._fd, min(HASH_BLOCK, end - self.hashed), self.hashed)
                if not block:
                    raise DownloadError(f"{self.f.path} shrank while downloading.", transient=True)
                self._digest.update(block)
                self.hashed += len(block)
        return self.hashed - start

    def verified(self) -> bool:
        """All bytes hashed: does the checksum match the Hub's?"""
        return self.hashed == self.f.size and self._digest.hexdigest() == (self.f.sha256 or self.f.blob_id)

    def start_over(self) -> None:
        """The content proved wrong: forget every range and the checksum."""
        with self._hash_lock:
            self.map.reset()
            self._digest, self.hashed = _new_digest(self.f), 0

    def finish(self) -> None:
        """Verified: close, turn the partial file into the blob and link it into the snapshot."""
        self.close()
        cache.place_blob(self.partial, self.blob)
        self.map.close(remove=True)
        cache.link_pointer(self.blob, self.pointer)

    def close(self) -> None:
        with self._gate:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self.map.close()

    def release(self) -> None:
        self.close()
        if self._flock is not None:
            self._flock.release()
            self._flock = None

    # ----- where the bytes come from (worker threads) ----------------------------------------------
    def resolve(self, *, again: bool = False) -> None:
        """Ask the Hub (HEAD) where the file's bytes are: its content host's signed URL, if it
        redirects. `again` after the content host refused an expired URL; bounded per minute."""
        with self.resolve_lock:
            if self.resolved.is_set() and not again:
                return
            now = time.monotonic()
            self._resolves = [t for t in self._resolves if now - t < 60]
            if len(self._resolves) >= RESOLVES_PER_MINUTE:
                raise DownloadError(
                    f"The Hub's download links for {self.f.path} keep expiring.", transient=True
                )
            self._resolves.append(now)
            meta = get_hf_file_metadata(
                self.url, token=self.hub.token, endpoint=self.hub.endpoint, library_name="mlxui"
            )
            if meta.size is not None and meta.size != self.f.size:
                raise DownloadError(
                    f"{self.f.path} changed size on the Hub while downloading.", transient=True
                )
            if meta.etag and cache.check_etag(meta.etag) != self.f.etag:
                raise DownloadError(f"{self.f.path} changed on the Hub while downloading.", transient=True)
            self.location = meta.location or self.url
            self.resolved.set()

    def headers(self) -> dict[str, str]:
        """Hub headers; the token only goes to the Hub itself, never to its content host."""
        headers = self.hub.headers()
        if _origin(self.location) != _origin(self.url):
            headers.pop("authorization", None)
            headers.pop("Authorization", None)
        return headers


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _new_digest(f: FilePlan) -> hashlib._Hash:
    if f.sha256:
        return hashlib.sha256()
    # The git blob id of a plain file: sha1 over "blob <size>\0" + content.
    return hashlib.sha1(b"blob %d\0" % f.size, usedforsecurity=False)
