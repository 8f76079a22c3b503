"""Faults a user meets: a model server killed, mlxui killed, a download killed again and again,
a broken model folder, a chat template that fails. Each ends with a clear message and nothing lost."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from mlxui.hub import cache
from tests.harness.app_process import app_env, start_app
from tests.harness.downloads import asked, done_ranges, only_missing_asked
from tests.harness.fakehub import RequestRecord
from tests.harness.models import PLAIN_REPLY, build_scripted_plain

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def add_and_start(app, name: str, model: str) -> dict:
    httpx.post(f"{app.url}/api/profiles", json={"name": name, "model": model}, timeout=30)
    response = httpx.post(f"{app.url}/api/servers/{name}/start", timeout=90)
    assert response.status_code == 200, response.text
    return response.json()


def ask(app, model: str) -> httpx.Response:
    return httpx.post(f"{app.url}/v1/chat/completions", json={"model": model, **CHAT}, timeout=60)


def wait_state(app, name: str, state: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if httpx.get(f"{app.url}/api/servers/{name}", timeout=5).json()["state"] == state:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{name} never became {state}")


def test_killed_server_is_crashed_and_the_next_request_restarts_it(hub_cache, tmp_path) -> None:
    app = start_app(tmp_path / "home", env={"HF_HUB_CACHE": str(hub_cache.cache_dir)})
    try:
        server = add_and_start(app, "plain", hub_cache.repos["plain"])
        assert ask(app, "plain").json()["choices"][0]["message"]["content"] == PLAIN_REPLY
        os.kill(server["pid"], signal.SIGKILL)
        assert wait_state(app, "plain", "crashed", 2.0) < 2.0
        # The next request restarts it (the crash loop guard allows 3 restarts in 5 minutes).
        assert ask(app, "plain").json()["choices"][0]["message"]["content"] == PLAIN_REPLY
        again = httpx.get(f"{app.url}/api/servers/plain", timeout=5).json()
        assert again["state"] == "ready" and again["pid"] != server["pid"]
        restarted = httpx.post(f"{app.url}/api/servers/plain/restart", timeout=90).json()
        assert restarted["state"] == "ready" and restarted["pid"] != again["pid"]
    finally:
        httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
        app.stop()


def test_killed_mlxui_readopts_its_server_on_the_next_start(hub_cache, tmp_path) -> None:
    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir)}
    app = start_app(tmp_path / "home", env=env)
    server_pid = None
    try:
        server_pid = add_and_start(app, "plain", hub_cache.repos["plain"])["pid"]
        ask(app, "plain")
        os.kill(app.pid, signal.SIGKILL)
        app.process.wait(10)
        assert psutil.pid_exists(server_pid), "the model server outlives a crashed mlxui"
        app = start_app(tmp_path / "home", env=env)
        wait_state(app, "plain", "ready", 10)
        adopted = httpx.get(f"{app.url}/api/servers/plain", timeout=5).json()
        assert adopted["pid"] == server_pid, "re-adopted, not restarted"
        assert ask(app, "plain").json()["choices"][0]["message"]["content"] == PLAIN_REPLY
        assert httpx.post(f"{app.url}/api/servers/plain/stop", timeout=60).status_code == 200
        assert (
            not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
        )
    finally:
        app.stop()
        if server_pid and psutil.pid_exists(server_pid):
            psutil.Process(server_pid).kill()


def test_a_re_adopted_server_killed_9_is_crashed_within_2_s_and_the_next_request_restarts_it(
    hub_cache, tmp_path
) -> None:
    """A re-adopted server is not our child: only psutil sees it die, and that must still count."""
    env = {"HF_HUB_CACHE": str(hub_cache.cache_dir)}
    app = start_app(tmp_path / "home", env=env)
    server_pid = None
    try:
        server_pid = add_and_start(app, "plain", hub_cache.repos["plain"])["pid"]
        os.kill(app.pid, signal.SIGKILL)
        app.process.wait(10)
        app = start_app(tmp_path / "home", env=env)
        wait_state(app, "plain", "ready", 10)
        assert httpx.get(f"{app.url}/api/servers/plain", timeout=5).json()["pid"] == server_pid, "re-adopted"
        os.kill(server_pid, signal.SIGKILL)
        assert wait_state(app, "plain", "crashed", 2.0) < 2.0
        assert ask(app, "plain").json()["choices"][0]["message"]["content"] == PLAIN_REPLY
        restarted = httpx.get(f"{app.url}/api/servers/plain", timeout=5).json()
        assert restarted["state"] == "ready" and restarted["pid"] != server_pid
        assert httpx.post(f"{app.url}/api/servers/plain/stop", timeout=60).status_code == 200
    finally:
        app.stop()
        if server_pid and psutil.pid_exists(server_pid):
            psutil.Process(server_pid).kill()


def test_a_download_killed_at_ten_random_points_resumes_each_time_and_ends_intact(fake_hub, tmp_path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    rng = random.Random(7)
    payload = rng.randbytes(20_000_000)  # 10 runs x 4 connections x a cut of <= 450 KB never finish it
    size = len(payload)
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    repo_id = "faults/killed-often"
    fake_hub.add_repo(repo_id, folder)
    cache_dir = tmp_path / "cache"
    partial = cache.partial_path(cache_dir, repo_id, hashlib.sha256(payload).hexdigest())
    asked_with: list[
        tuple[RequestRecord, list[tuple[int, int]]]
    ] = []  # each weights GET, and what was on disk

    def note_partial(rec: RequestRecord) -> None:
        if rec.filename == "model.safetensors":
            asked_with.append((rec, done_ranges(partial, size)))

    fake_hub.on_file_get = note_partial
    env = {**app_env(tmp_path / "home"), "HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_CACHE": str(cache_dir)}  # fmt: skip
    command = [sys.executable, "-m", "mlxui", "models", "pull", repo_id, "--direct", "--connections", "4"]
    fake_hub.stall_seconds = 60  # a cut body stays silent until the run is killed
    for run in range(10):
        fake_hub.stall_after_bytes = rng.randint(64_000, 450_000)  # where each transfer of this run is cut
        first_get = len(asked_with)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_cuts_written(fake_hub, partial, size, asked_with, first_get)
        finally:
            proc.kill()  # SIGKILL: nothing of ours runs; what the range map says is all that counts
            proc.wait(10)
        this_run = asked_with[first_get:]
        assert this_run, f"run {run + 1} fetched nothing"
        for rec, on_disk in this_run:  # each connection asked only for bytes not on disk
            assert only_missing_asked([rec], on_disk, size), f"run {run + 1} asked {rec.range} again"
        assert run == 0 or any(on_disk for _rec, on_disk in this_run), "a later run found the bytes kept"
    fake_hub.stall_after_bytes = None
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    blobs = list((cache_dir / "models--faults--killed-often" / "blobs").iterdir())
    assert not [b for b in blobs if ".incomplete" in b.name], "no partial file or range map left behind"
    weights = next(b for b in blobs if b.stat().st_size == size)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
    on_disk = sum(b.stat().st_size for b in blobs)
    assert on_disk < size + 10_000, "no duplicated disk use"

    for rec, kept in asked_with:
        assert only_missing_asked([rec], kept, size), f"{rec.range} asked for bytes already on disk"
    served = fake_hub.bytes_served(repo_id)
    repo_bytes = size + len('{"model_type": "llama"}')
    print(f"10 kills: served {served} bytes for {repo_bytes} ({served / repo_bytes:.3f}x)")
    assert served <= 1.05 * repo_bytes, "what was on disk is never fetched again"


def wait_cuts_written(
    hub, partial: Path, size: int, asked_with: list[tuple[RequestRecord, list[tuple[int, int]]]], first: int
) -> None:
    """Until every weights GET of this run went silent at `hub.stall_after_bytes` (or ended) and
    the client wrote all of it into the partial file: a kill now loses only what the map misses."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        gets = [rec for rec, _kept in asked_with[first:]]
        if gets and all(
            g.bytes_sent in (hub.stall_after_bytes, asked(g, size)[1] - asked(g, size)[0]) for g in gets
        ):
            ranges = done_ranges(partial, size)  # the bytes each cut GET sent must all be in the map
            if all(
                any(s <= asked(g, size)[0] and asked(g, size)[0] + g.bytes_sent <= e for s, e in ranges)
                for g in gets
            ):
                return
        time.sleep(0.005)
    raise AssertionError(
        f"the cut GETs never reached the disk: {[(r.range, r.bytes_sent) for r, _ in asked_with[first:]]}; "
        f"{len(asked_with)} weights GETs in all, {len(hub.requests)} requests, last {hub.requests[-3:]}"
    )


def test_a_corrupt_config_is_reported_not_a_traceback(hub_cache, model_dirs, tmp_path) -> None:
    broken = build_scripted_plain(tmp_path / "broken")
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": ')  # cut off
    info = subprocess.run([sys.executable, "-m", "mlxui", "models", "info", str(broken), "--json"],
                          env=app_env(tmp_path / "home"), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in info.stderr
    assert any("config.json" in p for p in json.loads(info.stdout)["problems"])
    app = start_app(tmp_path / "home", env={"HF_HUB_CACHE": str(hub_cache.cache_dir)})
    try:
        httpx.post(f"{app.url}/api/profiles", json={"name": "broken", "model": str(broken)}, timeout=30)
        failed = httpx.post(f"{app.url}/api/servers/broken/start", timeout=90)
        assert failed.status_code == 500
        error = failed.json()["error"]
        assert error["message"].startswith("broken did not start")
        assert "Expecting value" in error["message"] and "Last lines of" in error["log_tail"]
    finally:
        app.stop()


def test_a_chat_template_that_fails_gives_a_clear_error_and_the_server_stays_usable(
    hub_cache, tmp_path
) -> None:
    model = build_scripted_plain(tmp_path / "bad-template")
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    good_template = config["chat_template"]
    config["chat_template"] = "{% if messages[0]['content'] == 'boom' %}{{ raise_exception('bad template') }}{% endif %}" + (
        good_template)  # fmt: skip
    config_path.write_text(json.dumps(config))
    app = start_app(tmp_path / "home", env={"HF_HUB_CACHE": str(hub_cache.cache_dir)})
    try:
        add_and_start(app, "tmpl", str(model))
        bad = httpx.post(f"{app.url}/v1/chat/completions", timeout=60,
                         json={"model": "tmpl", "messages": [{"role": "user", "content": "boom"}]})  # fmt: skip
        assert bad.status_code >= 400 and "error" in bad.json()
        good = ask(app, "tmpl")
        assert good.json()["choices"][0]["message"]["content"] == PLAIN_REPLY, "the server stays usable"
    finally:
        httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)
        app.stop()


def download_of(app, repo_id: str) -> dict:
    rows = [d for d in httpx.get(f"{app.url}/api/downloads", timeout=5).json() if d["repo_id"] == repo_id]
    assert len(rows) == 1, rows
    return rows[0]


def wait_download(app, repo_id: str, check, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = download_of(app, repo_id)
        if check(row):
            return row
        time.sleep(0.1)
    raise AssertionError(f"{repo_id}: {what} never happened (last {row})")


def test_killed_mlxui_resumes_its_download_and_keeps_its_profiles(fake_hub, tmp_path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    payload = random.Random(11).randbytes(8_000_000)
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    repo_id = "faults/app-killed"
    fake_hub.add_repo(repo_id, folder)
    fake_hub.throttle_bps = 2_000_000
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    app = start_app(tmp_path / "home", env=env)
    try:
        plain = str(build_scripted_plain(tmp_path / "plain"))
        created = httpx.post(f"{app.url}/api/profiles", json={"name": "kept", "model": plain}, timeout=30)
        assert created.status_code == 201, created.text
        started = httpx.post(f"{app.url}/api/downloads", json={"repo_id": repo_id}, timeout=30)
        assert started.status_code == 202, started.text
        wait_download(app, repo_id, lambda d: d["bytes_done"] >= 2_000_000, 30, "2 MB downloaded")
        os.kill(app.pid, signal.SIGKILL)
        app.process.wait(10)
        served_before_restart = fake_hub.bytes_served(repo_id)
        fake_hub.throttle_bps = None

        app = start_app(tmp_path / "home", env=env)
        done = wait_download(app, repo_id, lambda d: d["state"] in ("done", "failed"), 60, "the end")
        assert done["state"] == "done", done["error"]
        assert done["bytes_done"] == done["bytes_total"] == len(payload) + len('{"model_type": "llama"}')
        blobs = list((tmp_path / "cache" / "models--faults--app-killed" / "blobs").iterdir())
        weights = next(b for b in blobs if b.stat().st_size == len(payload))
        assert hashlib.sha256(weights.read_bytes()).digest() == hashlib.sha256(payload).digest()
        resumed = fake_hub.bytes_served(repo_id) - served_before_restart
        assert resumed < len(payload) - 1_000_000, f"resumed from the bytes on disk, not from 0 ({resumed} B)"
        profiles = httpx.get(f"{app.url}/api/profiles", timeout=5).json()
        assert [p["name"] for p in profiles] == ["kept"], "the database is intact"
    finally:
        app.stop()
