"""A model split over 3 local ranks with MLX's own engine (mlx.launch, ring backend, tensor
parallel mlx_lm.server), run by the real Supervisor behind the real gateway, on the real SmolLM2.

One launch answers several questions (it costs ~10-30 s on a 2-core machine): Paris through the
gateway, the ranks under the launcher, metrics summed over them, Stop leaving no rank. A second
launch is killed rank by rank (kill -9) to prove the crash is seen within 2 s with that rank's
lines. What needs no launch (the head-count sentence, ssh checks against a fake `ssh`) is below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlxui.config import Config
from mlxui.servers.distributed import (
    LAUNCHER_ENTRY,
    RANK_ENTRY,
    describe_ranks,
    first_host_problem,
    group_command,
    head_split_problem,
    local_share,
    ssh_problems,
)
from mlxui.servers.group_launch import GroupProcess
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.profile_rules import FieldChecker, ProfileError
from mlxui.servers.profiles import Profile
from mlxui.servers.runs import readopt
from mlxui.servers.state import ServerState
from mlxui.services import server_status
from tests.harness.smollm2 import QUESTION
from tests.test_gateway import GatewayApp

FAKEBIN = Path(__file__).parent / "fakebin"


@pytest.fixture(scope="module")
def gw(smollm2_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayApp]:
    home = tmp_path_factory.mktemp("distributed-home")
    cache = tmp_path_factory.mktemp("distributed-hf")
    profile = {"name": "smol3", "model": str(smollm2_model), "ranks": 3, "temperature": 0.0, "max_tokens": 32}
    with GatewayApp(Config(home=home, hf_cache=cache), [profile]) as app:
        yield app


def _call(gw: GatewayApp, coro, timeout: float = 120):  # noqa: ANN001, ANN202 -- any coroutine
    return asyncio.run_coroutine_threadsafe(coro, gw.loop).result(timeout)


def _group_pids(launcher: int) -> set[int]:
    proc = psutil.Process(launcher)
    return {launcher, *(child.pid for child in proc.children(recursive=True))}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_three_ranks_answer_paris_through_the_gateway_and_stop_leaves_none(gw: GatewayApp) -> None:
    server = gw.supervisor.servers["smol3"]
    asked = [{"role": "user", "content": QUESTION}]
    started = time.monotonic()
    reply = gw.client(timeout=180).chat.completions.create(
        model="smol3", messages=asked, temperature=0.0, max_tokens=32
    )
    print(f"3-rank start + first answer in {time.monotonic() - started:.1f} s")
    assert "Paris" in (reply.choices[0].message.content or ""), reply
    assert server.state == ServerState.READY
    process = server._process  # noqa: SLF001 -- the test looks at the group it supervises
    assert isinstance(process, GroupProcess)
    assert sorted(process.ranks) == [0, 1, 2]  # every local rank, known by its MLX_RANK
    launcher = psutil.Process(server.pid)
    assert LAUNCHER_ENTRY in launcher.cmdline() and RANK_ENTRY in launcher.cmdline()
    assert os.getpgid(server.pid) == server.pid
    idle = launcher.cpu_percent(interval=1.0)  # its stdin loop must wait, not spin (GroupProcess.spawn)
    assert idle < 20, f"mlx.launch uses {idle:.0f} % CPU while the model is idle"
    assert all(os.getpgid(pid) == server.pid for pid in process.rank_pids())  # one process group

    # The tile's memory is the sum over the launcher and all its ranks.
    ranks_rss = sum(psutil.Process(pid).memory_info().rss for pid in process.rank_pids())
    deadline = time.monotonic() + 5
    while (server.metrics.rss_bytes or 0) < ranks_rss * 0.9 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert server.metrics.rss_bytes is not None and server.metrics.rss_bytes >= ranks_rss * 0.9
    assert server_status(server)["ranks"] == "3 ranks here"  # what the API and the tile say

    # Re-adoption after an mlxui restart covers the group: the run record names the launcher.
    recorded = dataclasses.replace(
        server.profile, run_pid=server.pid, run_started_at=server.create_time,
        run_cmdline=server.cmdline, run_port=server.port,
    )  # fmt: skip
    successor = ManagedServer(recorded, logs_dir=gw.config.logs_dir, env={}, publish=lambda *_: None)
    assert _call(gw, readopt(successor, recorded, {}, timeout=60)) is True
    adopted = successor._process  # noqa: SLF001
    assert successor.state == ServerState.READY and isinstance(adopted, GroupProcess)
    assert adopted.rank_pids() == process.rank_pids()
    successor.detach()  # the first one goes on supervising it

    pids = _group_pids(server.pid)
    assert len(pids) >= 4  # the launcher and 3 ranks
    log = server.log_path
    stopping = time.monotonic()
    _call(gw, gw.supervisor.stop("smol3"))
    assert server.state == ServerState.STOPPED
    assert [pid for pid in pids if not _gone(pid)] == []
    # Through the launcher: rank 0 got SIGTERM, mlx.launch saw it end, ended the others (or they
    # left the broken ring by themselves) and exited on its own (0, not a signal), well before the
    # stop timeout after which the whole group would be killed outright.
    assert time.monotonic() - stopping < gw.supervisor.stop_timeout - 2
    assert process.returncode == 0
    assert "Node with rank 0 exited with code -15" in log.read_text()


@pytest.mark.slow
def test_kill_9_of_one_rank_marks_the_server_crashed_within_2_s_with_its_lines(gw: GatewayApp) -> None:
    server = _call(gw, gw.supervisor.start("smol3"), timeout=180)
    process = server._process  # noqa: SLF001
    assert isinstance(process, GroupProcess) and sorted(process.ranks) == [0, 1, 2]
    pids = _group_pids(server.pid)
    victim = process.ranks[1].pid
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    while server.state != ServerState.CRASHED and time.monotonic() - killed < 5:
        time.sleep(0.02)
    took = time.monotonic() - killed
    print(f"crash seen after {took:.2f} s")
    assert server.state == ServerState.CRASHED and took < 2.0
    assert server.error.startswith(f"Rank 1 (pid {victim}) of the distributed server stopped unexpectedly")
    assert "[rank 1] " in server.error  # that rank's own log lines
    deadline = time.monotonic() + 5  # the launcher and the other ranks are ended too
    while any(not _gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if not _gone(pid)] == []
    _call(gw, gw.supervisor.stop("smol3"))  # acknowledged: STOPPED


@pytest.mark.slow
def test_two_ranks_are_refused_before_launch_with_the_head_count(gw: GatewayApp, smollm2_model: Path) -> None:
    values = {"name": "smol2", "model": str(smollm2_model), "ranks": 2}
    with pytest.raises(ProfileError) as refused:
        _call(gw, gw.supervisor.profiles.create(values))
    assert refused.value.field == "ranks"
    assert refused.value.message == (
        f"{smollm2_model.name} has 9 attention heads and 3 KV heads: it splits over 1 or 3 ranks, not 2."
    )
    # A pipeline is not offered for llama models (mlx_lm has none for them).
    with pytest.raises(ProfileError, match="no pipeline mode for llama"):
        _call(gw, gw.supervisor.profiles.create({**values, "ranks": 3, "parallel": "pipeline"}))


@pytest.mark.slow
def test_a_host_that_is_not_ready_fails_the_start_before_anything_is_spawned(
    gw: GatewayApp, smollm2_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBIN_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_SSH_HOSTS", "10.0.0.3=nomodel")
    values = {"name": "trio", "model": str(smollm2_model), "hosts": ["127.0.0.1", "10.0.0.2", "10.0.0.3"]}
    _call(gw, gw.supervisor.profiles.create(values))
    try:
        with pytest.raises(ServerError) as failed:
            _call(gw, gw.supervisor.start("trio"))
        assert str(failed.value).startswith(
            "Not every host is ready:\n10.0.0.2: cannot be reached over ssh without a password (ssh: Could not "
            f"resolve hostname 10.0.0.2: Name or service not known). Copy this Mac's key there (ssh-copy-id) "
            f"and try `ssh 10.0.0.2 true`.\n10.0.0.3: the model folder {smollm2_model} is not there"
        )
        server = gw.supervisor.servers["trio"]
        assert server.state == ServerState.FAILED and server.pid is None
        assert len((tmp_path / "calls.log").read_text().splitlines()) == 2  # one ssh call per remote host
    finally:
        _call(gw, gw.supervisor.profiles.delete("trio"))


def test_the_head_sentence_names_every_valid_count() -> None:
    config = {"num_attention_heads": 32, "num_key_value_heads": 8}
    assert head_split_problem(config, 8, "Llama") is None
    assert head_split_problem(config, 3, "Llama") == (
        "Llama has 32 attention heads and 8 KV heads: it splits over 1, 2, 4 or 8 ranks, not 3."
    )


def test_the_launch_command_is_mlx_launch_with_the_ring_and_the_rank_entry() -> None:
    profile = Profile(name="x", model="/m", ranks=2, hosts=["10.0.0.1", "10.0.0.2"], remote_python="/py")
    cmd = group_command(
        profile, ["--model", "/m", "--port", "9"], ring_port=40000, env={"HF_HUB_OFFLINE": "1"}
    )
    assert cmd[:3] == [sys.executable, "-c", LAUNCHER_ENTRY]
    assert cmd[3:] == [
        "--backend", "ring", "--starting-port", "40000", "--hosts", "10.0.0.1,10.0.0.2", "-n", "2",
        "--python", "/py", "--env", "HF_HUB_OFFLINE=1", "--", "-c", RANK_ENTRY, "--model", "/m", "--port", "9",
    ]  # fmt: skip
    from_file = Profile(name="x", model="/m", hostfile="/h.json", backend="jaccl", parallel="pipeline")
    cmd = group_command(from_file, ["--model", "/m"], ring_port=40000, env={})
    assert cmd[3:9] == ["--backend", "jaccl", "--starting-port", "40000", "--hostfile", "/h.json"]
    assert "-n" not in cmd and cmd[-1] == "--pipeline" and cmd[cmd.index("--python") + 1] == sys.executable


def test_each_remote_host_is_checked_with_one_ssh_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake `ssh` on PATH: mac-b is fine, mac-c lacks the model, mac-d refuses the key."""
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBIN_LOG", str(calls))
    monkeypatch.setenv("FAKE_SSH_HOSTS", "mac-b=ok,mac-c=nomodel,mac-d=denied")
    hosts = ["127.0.0.1", "mac-b", "mac-c", "mac-c", "mac-d", "mac-e"]
    problems = ssh_problems(hosts, Path("/models/big model"), "/usr/bin/python3")
    assert problems[0] == "mac-c: the model folder /models/big model is not there (copy it to the same path)."
    assert problems[1].startswith("mac-d: cannot be reached over ssh without a password (")
    assert "mac-d: Permission denied (publickey,password" in problems[1] and "ssh-copy-id" in problems[1]
    assert problems[2].startswith("mac-e: cannot be reached over ssh") and "Could not resolve" in problems[2]
    assert len(problems) == 3
    argvs = [line for line in calls.read_text().splitlines()]
    assert len(argvs) == 4  # one call per distinct remote host; never one for 127.0.0.1
    assert (
        '"BatchMode=yes"' in argvs[0]
        and '"ConnectTimeout=5"' in argvs[0]
        and "'/models/big model'" in argvs[0]
    )


def test_the_distributed_fields_are_checked_and_normalised() -> None:
    base = {"name": "d", "model": "/m"}
    clean = FieldChecker({**base, "hosts": "127.0.0.1, 10.0.0.2", "ranks": 1, "backend": "ring"}).run(
        [], 8765
    )
    assert (clean["hosts"], clean["ranks"], clean["backend"], clean["parallel"]) == (
        ["127.0.0.1", "10.0.0.2"],
        None,
        None,
        None,
    )
    checker = FieldChecker({
        **base, "hosts": ["10.0.0.1", "-oProxyCommand=x"], "ranks": 0, "backend": "tcp",
        "parallel": "data", "remote_python": "python3", "hostfile": "hosts.json",
    })  # fmt: skip
    checker.run([], 8765)
    assert set(checker.errors) == {"hosts", "ranks", "backend", "parallel", "remote_python", "hostfile"}
    both = FieldChecker({**base, "hosts": ["10.0.0.1"], "hostfile": "/h.json"})
    both.run([], 8765)
    assert both.errors == {"hosts": "Give either hosts or a hostfile, not both."}
    names = FieldChecker({**base, "hosts": ["mac-a", "mac-b"]})  # the ring connects to IPs
    names.run([], 8765)
    assert names.errors["hosts"].startswith("The ring backend needs IP addresses")
    assert FieldChecker({**base, "hosts": ["mac-a", "mac-b"], "backend": "mpi"}).run([], 8765)["hosts"]


def test_rank_0_must_be_this_machine_and_memory_counts_this_machines_share() -> None:
    assert first_host_problem(["127.0.0.1", "10.9.9.9"]) is None
    assert first_host_problem(["10.9.9.9", "127.0.0.1"]).startswith(
        "The first host (10.9.9.9) must be this machine"
    )
    assert local_share(Profile(name="x", model="/m")) == 1.0
    assert local_share(Profile(name="x", model="/m", ranks=3)) == 1.0
    assert local_share(Profile(name="x", model="/m", hosts=["127.0.0.1", "10.9.9.9"], ranks=2)) == 0.5
    assert describe_ranks(Profile(name="x", model="/m", hosts=["127.0.0.1", "10.9.9.9"], ranks=2)) == (
        "4 ranks: 2 here, 2 on 10.9.9.9"
    )
