"""Fails the run when a test leaves a process behind.

Every process started during the run inherits MLXUI_TEST_RUN (set at configure time), so even a
grandchild re-parented to init is found. Long-lived processes owned by session fixtures are
declared with `keep(pid)`; they (and their descendants) are checked at session end instead.
"""

from __future__ import annotations

import os
import time
import uuid

import psutil
import pytest

TAG = "MLXUI_TEST_RUN"
_kept: set[int] = set()


def keep(pid: int) -> None:
    """Allow `pid` and its descendants to outlive the test that started them (session fixtures)."""
    _kept.add(pid)


def release(pid: int) -> None:
    _kept.discard(pid)


def tagged_processes() -> dict[int, psutil.Process]:
    """Processes of this test run (they carry our tag in their environment)."""
    tag = os.environ.get(TAG)
    found: dict[int, psutil.Process] = {}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "uids"]):
        if proc.pid == me or (proc.info["uids"] and proc.info["uids"].real != os.getuid()):
            continue
        try:
            if proc.environ().get(TAG) == tag:
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _kept_tree() -> set[int]:
    allowed = set()
    for pid in _kept:
        try:
            proc = psutil.Process(pid)
            allowed.add(pid)
            allowed.update(child.pid for child in proc.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return allowed


def leftovers(before: set[int], grace: float = 3.0) -> list[psutil.Process]:
    deadline = time.monotonic() + grace
    while True:
        alive = [
            p
            for pid, p in tagged_processes().items()
            if pid not in before and pid not in _kept_tree() and p.status() != psutil.STATUS_ZOMBIE
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def kill_all(procs: list[psutil.Process]) -> str:
    described = []
    for proc in procs:
        try:
            described.append(f"{proc.pid} {' '.join(proc.cmdline())[:160]}")
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(procs, timeout=5)
    return "; ".join(described)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault(TAG, uuid.uuid4().hex)


@pytest.fixture(autouse=True)
def no_orphan_processes():
    before = set(tagged_processes())
    yield
    left = leftovers(before)
    if left:
        pytest.fail(f"test left processes running (killed now): {kill_all(left)}", pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _kept.clear()
    left = leftovers(set(), grace=5.0)
    if left:
        print(f"\nprocess guard: processes still running at the end of the run (killed): {kill_all(left)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
