"""The Hub misbehaving while the running app downloads (through /api/downloads, as the Models
page does): a 500, a body cut short, a slow line. Each shows what is going on and ends with the
files identical to the Hub's, fetched once."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable

import httpx

from tests.harness.app_process import start_app
from tests.harness.downloads import asked
from tests.harness.fakehub import FakeHub

PAYLOAD = random.Random(5).randbytes(3_000_000)


def serve(fake_hub: FakeHub, tmp_path, repo_id: str) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(PAYLOAD)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    fake_hub.add_repo(repo_id, folder)


def watch(app, repo_id: str, until: Callable[[dict], bool], timeout: float) -> list[dict]:
    """Every state the download shows (as /api/downloads reports it) until `until` holds."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [row] = [
            d for d in httpx.get(f"{app.url}/api/downloads", timeout=5).json() if d["repo_id"] == repo_id
        ]
        if not seen or row != seen[-1]:
            seen.append(row)
        if until(row):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{repo_id} did not get there in {timeout} s; last: {seen[-1:]}")


def weights_ok(tmp_path, repo_id: str) -> bool:
    blobs = (tmp_path / "cache" / f"models--{repo_id.replace('/', '--')}" / "blobs").iterdir()
    digests = {hashlib.sha256(b.read_bytes()).digest() for b in blobs}
    return hashlib.sha256(PAYLOAD).digest() in digests


def test_hub_500_then_a_cut_body_then_a_slow_line(fake_hub: FakeHub, tmp_path) -> None:
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    repo_id = "faults/hub-moods"
    serve(fake_hub, tmp_path, repo_id)
    app = start_app(tmp_path / "home", env=env)
    try:
        # 1. the Hub answers 500: the download says so and retries by itself; it recovers
        fake_hub.status_overrides[repo_id] = 500
        assert httpx.post(f"{app.url}/api/downloads", json={"repo_id": repo_id}).status_code == 202
        seen = watch(app, repo_id, lambda d: "500" in (d["note"] or "") or d["state"] == "failed", 30)
        assert seen[-1]["state"] != "failed", seen[-1]
        assert "Retrying" in seen[-1]["note"], seen[-1]
        # 2. ... meanwhile it recovers but cuts the weights short once: continued with a Range
        fake_hub.status_overrides.clear()
        fake_hub.drop_after_bytes, fake_hub.drop_times = 1_000_000, 1
        fake_hub.throttle_bps = 1_000_000  # 3. and is slow: progress moves honestly
        seen = watch(app, repo_id, lambda d: d["state"] in ("done", "failed"), 60)
        assert seen[-1]["state"] == "done", seen[-1]
        progress = [d["bytes_done"] for d in seen if d["state"] == "downloading"]
        assert len(set(progress)) >= 3, "progress was shown while it downloaded"
        assert weights_ok(tmp_path, repo_id)
        gets = [r for r in fake_hub.requests if r.repo_id == repo_id and r.filename == "model.safetensors"
                and r.method == "GET" and r.bytes_sent]  # fmt: skip
        size = len(PAYLOAD)
        [cut] = [g for g in gets if g.bytes_sent < asked(g, size)[1] - asked(g, size)[0]]
        assert cut.bytes_sent == 1_000_000
        continued = asked(cut, size)[0] + cut.bytes_sent
        assert any(asked(g, size)[0] == continued for g in gets), "the cut body continued where it stopped"
        assert fake_hub.bytes_served(repo_id) <= len(PAYLOAD) + 100, "nothing fetched twice"
    finally:
        app.stop()
