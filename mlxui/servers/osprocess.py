"""The operating-system side of one server: a process we spawned, or one we re-adopted.

A spawned server is our child (a `Popen`): waiting reaps it and its exit code is known. A
re-adopted server was started by an earlier mlxui run: it is reached through psutil only, and
every signal first checks that the pid still belongs to the same process (its start time), so a
reused pid is never hit. Servers run in their own session, so the pid is also the process
group id and a signal to the group reaches their children.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import psutil

logger = logging.getLogger(__name__)


class ServerProcess:
    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.returncode: int | None = None  # known for our children only
        self._popen = popen
        try:
            self._proc: psutil.Process | None = psutil.Process(pid)
            self.create_time: float | None = self._proc.create_time()
        except psutil.NoSuchProcess:  # an adopted pid that just exited; is_alive() says so
            self._proc, self.create_time = None, None

    @classmethod
    def spawn(cls, cmd: list[str], *, log: IO[bytes], env: dict[str, str], cwd: Path) -> ServerProcess:
        """Start `cmd` (an argument list, never a shell) in a new session, output to `log`."""
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # own process group: stop signals reach its children too
        )
        return cls(popen.pid, popen)

    def is_alive(self) -> bool:
        """True while the process exists; reaps it (and learns its exit code) when it is our child."""
        if self._popen is not None:
            self.returncode = self._popen.poll()
            return self.returncode is None
        if self._proc is None:
            return False
        with contextlib.suppress(psutil.NoSuchProcess):  # gone between the two calls: dead
            if self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE:
                return True
        with contextlib.suppress(ChildProcessError):  # adopted, yet our child (same process, tests)
            _, status = os.waitpid(self.pid, os.WNOHANG)
            if status:
                self.returncode = os.waitstatus_to_exitcode(status)
        return False

    async def stop(self, timeout: float) -> None:
        """SIGTERM the group, SIGKILL it after `timeout`; returns when no process of the tree is left."""
        members = await asyncio.to_thread(self._children)
        self._signal_group(signal.SIGTERM)
        if not await self._exited_within(timeout):
            logger.warning("pid %s ignored SIGTERM for %.0f s; killing it", self.pid, timeout)
            self._signal_group(signal.SIGKILL)
            await self._exited_within(5.0)
        # Whatever of the tree is left (a child that outlived its parent) goes too.
        self._signal_group(signal.SIGKILL)
        for child in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def kill_now(self) -> None:
        """SIGKILL at once (a cancelled start: nothing to shut down gracefully)."""
        self._signal_group(signal.SIGKILL)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=5)  # SIGKILL acts at once; this only reaps

    def detach(self) -> None:
        """Let the process live on after mlxui quits: forget the Popen so nothing reaps or kills it."""
        self._popen = None

    async def _exited_within(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.is_alive():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _children(self) -> list[psutil.Process]:
        try:
            return self._proc.children(recursive=True) if self._proc is not None else []
        except psutil.NoSuchProcess:
            return []

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            if self._popen is not None:  # our child: we made its group, which outlives its leader
                os.killpg(self.pid, sig)
            elif self._proc is not None and self._proc.is_running():  # compares the start time too
                if os.getpgid(self.pid) == self.pid:
                    os.killpg(self.pid, sig)
                else:
                    self._proc.send_signal(sig)
        except (ProcessLookupError, psutil.NoSuchProcess):
            return  # already gone
        except PermissionError as exc:
            logger.error("cannot signal pid %s: %s", self.pid, exc)
