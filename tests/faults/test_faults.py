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

import httpx
import psutil

from tests.harness.app_process import app_env, start_app
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


def test_killed_server_is_crashed_gateway_503_and_restart_works(hub_cache, tmp_path) -> None:
    app = start_app(tmp_path / "home", env={"HF_HUB_CACHE": str(hub_cache.cache_dir)})
    try:
        server = add_and_start(app, "plain", hub_cache.repos["plain"])
        assert ask(app, "plain").json()["choices"][0]["message"]["content"] == PLAIN_REPLY
        os.kill(server["pid"], signal.SIGKILL)
        assert wait_state(app, "plain", "crashed", 2.0) < 2.0
        refused = ask(app, "plain")
        assert refused.status_code == 503 and "crashed" in refused.json()["error"]["message"]
        restarted = httpx.post(f"{app.url}/api/servers/plain/restart", timeout=90).json()
        assert restarted["state"] == "ready" and restarted["pid"] != server["pid"]
        assert ask(app, "plain").json()["choices"][0]["message"]["content"] == PLAIN_REPLY
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


def test_a_re_adopted_server_killed_9_is_crashed_within_2_s_and_the_gateway_says_503(
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
        refused = ask(app, "plain")
        assert refused.status_code == 503 and "crashed" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"], "the client is told when to try again"
    finally:
        app.stop()
        if server_pid and psutil.pid_exists(server_pid):
            psutil.Process(server_pid).kill()


def test_a_download_killed_at_ten_random_points_ends_intact(fake_hub, tmp_path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    rng = random.Random(7)
    payload = rng.randbytes(6_000_000)
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    fake_hub.add_repo("faults/killed-often", folder)
    fake_hub.throttle_bps = 3_000_000
    cache = tmp_path / "cache"
    env = {**app_env(tmp_path / "home"), "HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_CACHE": str(cache)}  # fmt: skip
    command = [sys.executable, "-m", "mlxui", "models", "pull", "faults/killed-often"]
    for _ in range(10):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.2, 2.2))  # start-up is ~1 s; then some bytes move
        proc.kill()
        proc.wait(10)
    fake_hub.throttle_bps = None
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    blobs = list((cache / "models--faults--killed-often" / "blobs").iterdir())
    assert not [b for b in blobs if b.name.endswith(".incomplete")], "no partial file left behind"
    weights = next(b for b in blobs if b.stat().st_size == len(payload))
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
    on_disk = sum(b.stat().st_size for b in blobs)
    assert on_disk < len(payload) + 10_000, "no duplicated disk use"
    served = fake_hub.bytes_served("faults/killed-often")
    print(f"10 kills: served {served} bytes for a {len(payload)}-byte file ({served / len(payload):.3f}x)")


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
