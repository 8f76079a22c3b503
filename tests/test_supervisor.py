"""The supervisor against real mlx_lm/mlx_vlm servers running the scripted test models."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlxui.config import Config
from mlxui.db import close_db, get_setting, init_db
from mlxui.db.models import ServerProfile
from mlxui.servers.launch import (
    LOG_ROTATE_BYTES,
    SERVER_MODULES,
    build_command,
    failure_line,
    open_log,
)
from mlxui.servers.logs import read_log_tail
from mlxui.servers.process import ManagedServer, ServerError
from mlxui.servers.profiles import Profile
from mlxui.servers.runs import KEPT_RUNS_SETTING
from mlxui.servers.state import ServerEvent, ServerState, UnknownProfile
from mlxui.servers.supervisor import Supervisor
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.harness.models import PLAIN_REPLY, UNLOADABLE_ERROR, build_unloadable

pytestmark = pytest.mark.slow

PLAIN = "mlxui-test/scripted-plain"


@pytest.fixture
async def config(tmp_path: Path, hub_cache: HubCache) -> AsyncIterator[Config]:
    await init_db(tmp_path / "mlxui.sqlite3")
    yield Config(home=tmp_path / "home", hf_cache=hub_cache.cache_dir)
    await close_db()


@pytest.fixture
async def supervisor(config: Config) -> AsyncIterator[Supervisor]:
    sup = Supervisor(config, sampler_interval=0.2, stop_timeout=5.0, ready_timeout=60.0)
    yield sup
    await sup.shut_down(stop_servers=True)


async def add_profile(sup: Supervisor, **values: object) -> ManagedServer:
    profile = await sup.profiles.create(values)
    server = sup.get(profile.name)
    assert server is not None
    return server


async def chat(server: ManagedServer) -> str:
    assert server.base_url is not None
    body = {"model": server.upstream_model, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(procs: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)


async def run_record(name: str) -> tuple[int | None, float | None, list[str] | None, int | None]:
    row = await ServerProfile.get(name=name)
    return row.run_pid, row.run_started_at, row.run_cmdline, row.run_port


async def wait_for(condition, timeout: float) -> float:
    """Seconds until `condition()` held; fails the test after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def test_every_flag_we_pass_exists_in_the_installed_servers() -> None:
    lm = Profile(
        name="x", model="/m", kind="lm", temperature=0.7, top_p=0.9, max_tokens=64, prompt_cache_size=4,
        chat_template_args={"enable_thinking": False}, draft_model="/d",
    )  # fmt: skip
    vlm = Profile(**{**lm.editable(), "kind": "vlm", "chat_template_args": {"enable_thinking": True}})
    helps = {
        kind: subprocess.Popen(
            [sys.executable, "-m", module, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for kind, module in SERVER_MODULES.items()
    }
    for kind, profile in (("lm", lm), ("vlm", vlm)):
        out, _ = helps[kind].communicate(timeout=60)
        flags = [arg for arg in build_command(profile, 9999) if arg.startswith("--")]
        assert len(flags) >= (9 if kind == "lm" else 6)  # model, host, port + one per profile setting
        for flag in flags:
            assert flag in out.decode(), f"{SERVER_MODULES[kind]} has no {flag}"


def test_a_big_log_is_rotated_at_start_and_each_run_gets_a_header(tmp_path: Path) -> None:
    log_path = tmp_path / "srv.log"
    log_path.write_bytes(b"old line\n" * (LOG_ROTATE_BYTES // 9 + 1))
    log, offset = open_log(log_path, [sys.executable, "-m", "mlx_lm.server", "--model", "a b"])
    log.write(b"new output\n")
    log.close()
    assert log_path.with_name("srv.log.1").stat().st_size > LOG_ROTATE_BYTES
    _, header, output = log_path.read_text().splitlines()
    assert header.startswith("=== mlxui 20") and header.endswith(
        f": {sys.executable} -m mlx_lm.server --model 'a b'"
    )
    assert output == "new output"
    assert read_log_tail(log_path, 1, offset) == "new output"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INFO - Starting httpd\n", None),
        ("x - ERROR - generation thread died: No safetensors\nTraceback (most recent call last)\n",
         "x - ERROR - generation thread died: No safetensors"),
        ("Traceback (most recent call last):\n  File \"server.py\", line 1\n", None),  # still being written
        ("Traceback (most recent call last):\n  File \"s.py\"\nOSError: [Errno 98] Address already in use\n",
         "OSError: [Errno 98] Address already in use"),
        ("ERROR:    [Errno 98] error while attempting to bind on address\n",
         "ERROR:    [Errno 98] error while attempting to bind on address"),
    ],
    ids=["fine", "mlx_lm-error", "partial-traceback", "traceback", "uvicorn"],
)  # fmt: skip
def test_load_failures_are_found_in_the_log(tmp_path: Path, text: str, expected: str | None) -> None:
    log_path = tmp_path / "srv.log"
    log_path.write_text("=== header with - ERROR - in a path\n" + text)
    assert failure_line(log_path, offset=len("=== header with - ERROR - in a path\n")) == expected


async def test_start_answers_restart_gives_new_pid_stop_leaves_nothing(supervisor: Supervisor) -> None:
    await supervisor.start_up()
    server = await add_profile(supervisor, name="plain", model=PLAIN)
    events: list[ServerEvent] = []
    supervisor.on_change(events.append)

    started = await supervisor.start("plain")
    assert started is server and server.state == ServerState.READY
    assert await chat(server) == PLAIN_REPLY
    first_pid = server.pid
    assert first_pid is not None and server.base_url == f"http://127.0.0.1:{server.port}"
    await asyncio.sleep(0.05)  # the run record is written by a background task
    pid, started_at, cmdline, port = await run_record("plain")
    assert (pid, port) == (first_pid, server.port) and started_at == psutil.Process(pid).create_time()
    assert cmdline == psutil.Process(pid).cmdline()
    assert cmdline[1:5] == ["-m", "mlx_lm.server", "--model", PLAIN] and "127.0.0.1" in cmdline

    old_tree = tree(first_pid)
    await supervisor.restart("plain")
    assert server.state == ServerState.READY and server.pid != first_pid
    assert gone(old_tree)
    assert await chat(server) == PLAIN_REPLY

    new_tree = tree(server.pid)
    await supervisor.stop("plain")
    assert server.state == ServerState.STOPPED and server.pid is None and server.base_url is None
    assert gone(new_tree)
    await asyncio.sleep(0.05)
    assert await run_record("plain") == (None, None, None, None)
    transitions = [(e.previous, e.server.state) for e in events if e.kind == "state"]
    assert [str(p) for p, _ in transitions[:4]] == ["stopped", "starting", "loading", "ready"]
    assert "=== mlxui" in server.log_path.read_text()


async def test_kill_9_of_a_ready_server_is_crashed_within_2_s(supervisor: Supervisor) -> None:
    server = await add_profile(supervisor, name="victim", model=PLAIN)
    await supervisor.start("victim")
    os.kill(server.pid, signal.SIGKILL)
    took = await wait_for(lambda: server.state == ServerState.CRASHED, timeout=2.0)
    assert took < 2.0
    assert "killed by SIGKILL" in server.error and server.pid is None
    await asyncio.sleep(0.05)
    assert await run_record("victim") == (None, None, None, None)
    # A crashed server starts again (the gateway's next request does exactly this).
    again = await supervisor.ensure_ready("victim")
    assert again.state == ServerState.READY and await chat(again) == PLAIN_REPLY


async def test_a_bad_model_folder_fails_with_the_log_tail(
    supervisor: Supervisor, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    bad = build_unloadable(tmp_path / "unloadable")
    server = await add_profile(supervisor, name="broken", model=str(bad))
    with pytest.raises(ServerError) as failure:
        await supervisor.start("broken")
    assert server.state == ServerState.FAILED and server.pid is None
    assert server.error == str(failure.value)
    assert server.error.startswith("The server failed to load the model:")
    assert UNLOADABLE_ERROR in server.error.splitlines()[0]
    assert "Last lines of" in server.error and "Traceback" in server.error  # the log tail
    assert not [p for p in psutil.Process().children(recursive=True) if str(bad) in " ".join(p.cmdline())]


async def test_a_fixed_port_in_use_fails_before_spawning(supervisor: Supervisor) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # session fixtures' processes
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = await add_profile(supervisor, name="fixed", model=PLAIN, port=port)
        with pytest.raises(ServerError, match=f"Port {port} is in use by another program"):
            await supervisor.start("fixed")
        assert server.state == ServerState.FAILED and server.pid is None
        assert not server.log_path.exists()  # nothing was spawned, so nothing wrote a log
        assert not [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        # The gateway does not retry a start that just failed: the same message, at once.
        with pytest.raises(ServerError, match="is in use by another program"):
            await asyncio.wait_for(supervisor.ensure_ready("fixed"), timeout=1.0)
    with pytest.raises(UnknownProfile):
        await supervisor.ensure_ready("no-such-profile")


async def test_eight_concurrent_callers_share_one_start_and_idle_ttl_stops_it(supervisor: Supervisor) -> None:
    await supervisor.start_up()  # the sampler loop checks the idle TTL
    server = await add_profile(supervisor, name="ondemand", model=PLAIN, idle_ttl=1)
    with pytest.raises(TimeoutError, match="still loading"):
        await supervisor.ensure_ready("ondemand", timeout=0.01)  # gives up waiting; the start goes on
    results = await asyncio.gather(*(supervisor.ensure_ready(PLAIN) for _ in range(8)))
    assert all(r is server for r in results) and server.state == ServerState.READY and server.on_demand
    assert server.log_path.read_text().count("=== mlxui") == 1  # one process was started
    assert await chat(server) == PLAIN_REPLY
    with server.in_use():  # a long request in flight: not idle, however long it takes
        await asyncio.sleep(1.6)
        assert server.state == ServerState.READY
    pid = server.pid
    took = await wait_for(lambda: server.state == ServerState.STOPPED, timeout=5.0)
    assert took > 0.5 and not alive(pid)


async def test_stop_during_loading_ends_the_start_for_every_waiter(supervisor: Supervisor) -> None:
    server = await add_profile(supervisor, name="interrupted", model=PLAIN)
    waiter = asyncio.create_task(supervisor.ensure_ready("interrupted"))
    await wait_for(lambda: server.state == ServerState.LOADING, timeout=5.0)
    procs = tree(server.pid)
    await supervisor.stop("interrupted")
    with pytest.raises(ServerError, match="stopped while it was starting"):
        await waiter
    assert server.state == ServerState.STOPPED and gone(procs)
    await asyncio.sleep(0.05)
    assert await run_record("interrupted") == (None, None, None, None)


async def test_max_running_stops_the_least_recently_used_idle_server(supervisor: Supervisor) -> None:
    first = await add_profile(supervisor, name="first", model=PLAIN)
    second = await add_profile(supervisor, name="second", model=PLAIN)
    await supervisor.settings.save(max_running=1)
    await supervisor.start("first")
    first.last_used -= 60  # unused for a minute
    await supervisor.start("second")
    assert first.state == ServerState.STOPPED and second.state == ServerState.READY


async def test_a_kept_server_is_re_adopted_and_stale_records_are_cleared(
    config: Config, tmp_path: Path
) -> None:
    old = Supervisor(config, sampler_interval=0.2)
    await old.start_up()
    server = await add_profile(old, name="kept", model=PLAIN)
    await add_profile(old, name="stale-dead", model=PLAIN)
    await add_profile(old, name="stale-other", model=PLAIN)
    await old.start("kept")
    server.record_usage(7, 8)
    pid, create_time = server.pid, server.create_time
    await old.shut_down(stop_servers=False)
    assert alive(pid), "kept running"  # is_running() alone is also true for a killed, unreaped child
    # A pid that died, and a live pid that is some other program, as a crash would leave them.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    await ServerProfile.filter(name="stale-dead").update(
        run_pid=dead.pid, run_started_at=1.0, run_cmdline=["python"], run_port=1234
    )
    await ServerProfile.filter(name="stale-other").update(
        run_pid=os.getpid(), run_started_at=psutil.Process().create_time(), run_cmdline=["x"], run_port=1235
    )

    await old.profiles.create({"name": "auto", "model": PLAIN, "autostart": True})

    new = Supervisor(config, sampler_interval=0.2)
    try:
        await new.start_up()
        adopted = new.get("kept")
        assert adopted is not None and adopted.state == ServerState.READY
        assert (adopted.pid, adopted.create_time) == (pid, create_time)
        assert await chat(adopted) == PLAIN_REPLY
        assert (adopted.metrics.prompt_tokens_total, adopted.metrics.completion_tokens_total) == (7, 8)
        assert adopted.metrics.requests == 1 and await get_setting(KEPT_RUNS_SETTING) == {}
        for name in ("stale-dead", "stale-other"):
            assert await run_record(name) == (None, None, None, None)
            assert new.get(name).state == ServerState.STOPPED
        await wait_for(lambda: adopted.metrics.rss_bytes is not None, timeout=2.0)  # sampled again
        await new.stop("kept")  # by pid, although it is not new's child
        assert not alive(pid)
        auto = new.get("auto")
        await wait_for(lambda: auto.state == ServerState.READY, timeout=30.0)  # "start with mlxui"
        auto_pid = auto.pid
    finally:
        await new.shut_down()  # the default of the setting on_quit is "stop"
    assert not alive(auto_pid)


async def test_a_vision_model_runs_on_mlx_vlm_server(supervisor: Supervisor) -> None:
    server = await add_profile(supervisor, name="vision", model="mlxui-test/tiny-qwen2-vl", max_tokens=8)
    assert server.profile.kind == "vlm"
    await supervisor.start("vision")
    assert server.kind == "vlm" and "mlx_vlm.server" in psutil.Process(server.pid).cmdline()
    body = {"model": server.upstream_model, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.post("/v1/chat/completions", json=body)  # mlx_vlm needs `model`
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"], "the random model says something"
    assert (answer["choices"][0]["finish_reason"], answer["usage"]["completion_tokens"]) == ("length", 8), (
        "the profile's max_tokens reached mlx_vlm.server"
    )
    await supervisor.stop("vision")
