"""Supervision of a distributed server: the `mlx.launch` process and its local ranks as one.

The launcher is started like any server, in its own session, so its pid is the process group of
every local rank (mlx.launch starts them as its children, `bash -c ... exec python`) and of the
ssh sessions that carry the remote ranks. `GroupProcess` adds what a group needs:

- **liveness**: the group is alive while the launcher and every local rank it had when it became
  ready are alive. A rank killed outright is seen at the next watch tick (0.25 s); the launcher
  itself would notice only after up to ~2 s (its per-rank threads wait 1 s in `select`).
- **stop**: SIGTERM to rank 0 (local, or the ssh session that carries it); the launcher sees a
  rank end and ends every other one itself, the remote ones through its kill script over ssh, and
  exits. After the timeout, or if it does not, the whole group is killed (ServerProcess.stop).
- **which rank died**: each local rank's MLX_RANK (from its environment) maps pid -> rank, and
  every output line of a rank starts with "[rank N] " (distributed.RANK_ENTRY), so a crash shows
  that rank's own lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import psutil

from mlxui.servers.distributed import (
    RING_BASE_PORT,
    first_host_problem,
    group_command,
    is_distributed,
    is_group_command,
    rank_hosts,
    ring_base_port,
    split_problem,
    ssh_problems,
)
from mlxui.servers.launch import StartFailure, build_command, describe_exit
from mlxui.servers.logs import LOG_TAIL_LINES, read_log_tail
from mlxui.servers.osprocess import ServerProcess
from mlxui.servers.profiles import Profile, resolve_model

logger = logging.getLogger(__name__)

RANK_LINE = re.compile(r"^\[rank (\d+)\] ")
_LAUNCHER_REPORT = re.compile(r"Node with rank (\d+) (?:was killed|exited with code (-?\d+))")
_SCAN_BYTES = 2 * 1024 * 1024


class GroupProcess(ServerProcess):
    """An `mlx.launch` process (spawned or re-adopted) and the local ranks under it."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        super().__init__(pid, popen)
        self.ranks: dict[int, psutil.Process] = {}  # rank -> its local process, once seen
        self.dead_rank: tuple[int, int] | None = None  # (rank, pid) of the local rank that died first

    @classmethod
    def spawn(cls, cmd: list[str], *, log: IO[bytes], env: dict[str, str], cwd: Path) -> GroupProcess:
        """Like a server, but stdin is a pipe nobody writes and the launcher itself holds open:
        mlx.launch forwards its stdin to the ranks with `select` in a 0.1 s loop, and at EOF (say
        /dev/null) that loop never waits and burns a core for as long as the model runs."""
        read_end, write_end = os.pipe()
        try:
            popen = subprocess.Popen(
                cmd,
                stdin=read_end,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                pass_fds=(write_end,),  # the launcher keeps the pipe open: never EOF, never readable
            )
        finally:
            os.close(read_end)
            os.close(write_end)
        return cls(popen.pid, popen)

    def find_ranks(self) -> dict[int, int]:
        """Learn the local ranks (blocking: reads /proc); rank -> pid."""
        try:
            children = self._proc.children(recursive=True) if self._proc is not None else []
        except psutil.NoSuchProcess:
            return {}
        for child in children:
            with contextlib.suppress(psutil.Error):
                rank = child.environ().get("MLX_RANK")
                if rank is not None and rank.isdigit():
                    self.ranks[int(rank)] = child
        return {rank: proc.pid for rank, proc in sorted(self.ranks.items())}

    def is_alive(self) -> bool:
        if not super().is_alive():
            return False
        for rank, proc in self.ranks.items():
            try:
                gone = not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                self.dead_rank = self.dead_rank or (rank, proc.pid)
                return False
        return True

    def rank_pids(self) -> list[int]:
        return [proc.pid for _, proc in sorted(self.ranks.items())]

    async def stop(self, timeout: float) -> None:
        """End the ranks through the launcher (it stops the remote ones too), then the group."""
        members = await asyncio.to_thread(self._members)
        if super().is_alive():
            first = await asyncio.to_thread(self._rank_0)
            if first is not None:  # rank 0 ends: mlx.launch ends every other rank, here and remote
                with contextlib.suppress(psutil.NoSuchProcess):
                    first.send_signal(signal.SIGTERM)
            if not await self._launcher_exited_within(timeout):
                logger.warning(
                    "mlx.launch %s did not end its ranks in %.0f s; killing the group", self.pid, timeout
                )
        await super().stop(min(timeout, 2.0))
        for member in members:  # anything of the group that outlived the launcher
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()

    async def _launcher_exited_within(self, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while super().is_alive():
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _rank_0(self) -> psutil.Process | None:
        """Rank 0's process: known by MLX_RANK, else the launcher's first child (its ssh session)."""
        if 0 in self.ranks:
            return self.ranks[0]
        try:
            children = self._proc.children() if self._proc is not None else []
            return min(children, key=lambda child: (child.create_time(), child.pid), default=None)
        except psutil.NoSuchProcess:
            return None

    def _members(self) -> list[psutil.Process]:
        try:
            found = self._proc.children(recursive=True) if self._proc is not None else []
        except psutil.NoSuchProcess:
            found = []
        return found + [p for p in self.ranks.values() if p not in found]


def rank_lines(log_path: Path, offset: int, rank: int, lines: int) -> str:
    """The last `lines` lines rank `rank` wrote since `offset`, plus the launcher's report on it."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            data = log.read(_SCAN_BYTES)
    except OSError as exc:
        return f"(the log {log_path} cannot be read: {exc.strerror or exc})"
    text = data.decode(errors="replace").splitlines()
    own = [line for line in text if (m := RANK_LINE.match(line)) and int(m.group(1)) == rank]
    reports = [
        line.strip() for line in text if (m := _LAUNCHER_REPORT.search(line)) and int(m.group(1)) == rank
    ]
    return "\n".join(own[-lines:] + reports[-1:])


def ended_message(process: ServerProcess | None, pid: int | None, log_path: Path, offset: int) -> str:
    """What a user reads when a ready server stopped by itself (blocking: reads the log)."""
    lines = LOG_TAIL_LINES
    if not isinstance(process, GroupProcess):
        code = process.returncode if process else None
        tail = read_log_tail(log_path, lines, offset)
        return f"The server (pid {pid}) stopped unexpectedly ({describe_exit(code)}).\n{tail}"
    if process.dead_rank is not None:
        rank, pid = process.dead_rank
        return (
            f"Rank {rank} (pid {pid}) of the distributed server stopped unexpectedly; the other "
            f"ranks were ended.\n{rank_lines(log_path, offset, rank, lines)}"
        )
    return (
        f"The launcher mlx.launch (pid {process.pid}) stopped unexpectedly "
        f"({describe_exit(process.returncode)}); its ranks were ended.\n"
        + read_log_tail(log_path, lines, offset)
    )


async def launch_command(
    profile: Profile, server_args: list[str], port: int, env: Mapping[str, str], hf_cache: Path
) -> list[str]:
    """The checked `mlx.launch` command: the split, each remote host over ssh, free ring ports.
    Raises StartFailure with one sentence per problem."""
    folder = await asyncio.to_thread(resolve_model, profile.model, hf_cache)
    if folder is None:
        raise StartFailure(f"The model {profile.model} cannot be found.")
    problem = await asyncio.to_thread(split_problem, profile, folder)
    hosts = [] if problem else await asyncio.to_thread(rank_hosts, profile)
    problem = problem or (None if profile.hostfile else first_host_problem(hosts))
    if problem:
        raise StartFailure(problem)
    python = profile.remote_python or sys.executable
    unreachable = await asyncio.to_thread(ssh_problems, hosts, folder, python)
    if unreachable:
        raise StartFailure("Not every host is ready:\n" + "\n".join(unreachable))
    ring_port = await asyncio.to_thread(ring_base_port, len(hosts), port)
    if ring_port is None:
        raise StartFailure(f"No {len(hosts)} free ports in a row for the ring backend from {RING_BASE_PORT}.")
    return group_command(profile, server_args, ring_port=ring_port, env=env)


async def server_command(profile: Profile, port: int, env: Mapping[str, str], hf_cache: Path) -> list[str]:
    """The server's argument list: `mlx_lm.server` / `mlx_vlm.server`, or for a distributed
    profile the checked `mlx.launch` command running `mlx_lm.server` on every rank."""
    cmd = build_command(profile, port)
    if not is_distributed(profile):
        return cmd
    return await launch_command(profile, cmd[3:], port, env, hf_cache)  # flags from --model on


def process_kind(cmdline: list[str]) -> type[ServerProcess]:
    """A group for an mlx.launch command line (spawned or re-adopted), a plain process else."""
    return GroupProcess if is_group_command(cmdline) else ServerProcess
