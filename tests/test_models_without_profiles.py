"""Models are the unit: a model pulled from the Hub or added as a folder answers through the
gateway by its own names at once, without anyone creating a profile (issue 13, items 1-3)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.harness.app_process import running_app
from tests.harness.fixtures_hub import HubEnv
from tests.harness.models import PLAIN_REPLY, build_scripted_plain
from tests.test_cli_models import cli_env, serve

HI = [{"role": "user", "content": "hi"}]


def client(app) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{app.url}/v1", api_key="unused", http_client=httpx.Client(trust_env=False)
    )


def wait_done(app, repo_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = httpx.get(f"{app.url}/api/downloads", timeout=5).json()
        state = next((r["state"] for r in rows if r["repo_id"] == repo_id), None)
        if state == "done":
            return
        assert state not in ("failed", "cancelled"), rows
        time.sleep(0.1)
    raise AssertionError(f"{repo_id} did not finish downloading")


@pytest.fixture
def app(hf_env: HubEnv, tmp_path: Path):
    home = tmp_path / "home"
    cache = tmp_path / "hf-cache"  # empty: only what this test pulls or adds is there
    with running_app(home, env=cli_env(hf_env, home, cache_dir=cache)) as app:
        app.cli_env = cli_env(hf_env, home, cache_dir=cache) | {"MLXUI_PORT": str(app.port)}  # type: ignore[attr-defined]
        yield app
        httpx.post(f"{app.url}/api/servers/stop-all", timeout=60)


def test_a_pulled_model_answers_by_repo_id_and_short_name_with_no_profile(
    app, hf_env: HubEnv, tmp_path: Path
) -> None:
    repo_id = serve(hf_env.hub, build_scripted_plain(tmp_path / "pulled"))
    short = repo_id.split("/")[1]
    gateway = client(app)
    with pytest.raises(openai.NotFoundError):  # not on this machine yet
        gateway.chat.completions.create(model=repo_id, messages=HI)

    assert httpx.post(f"{app.url}/api/downloads", json={"repo_id": repo_id}, timeout=10).status_code == 202
    wait_done(app, repo_id)
    listed = {m.id: m.model_extra for m in gateway.models.list()}
    assert listed[repo_id]["state"] == "stopped" and listed[repo_id]["source"] == "local"
    assert listed[repo_id]["aliases"] == [short]

    reply = gateway.chat.completions.create(model=repo_id, messages=HI)  # started on demand
    assert reply.choices[0].message.content == PLAIN_REPLY
    assert reply.model == repo_id, "replies name the model the client asked for, not a local path"
    by_short = gateway.chat.completions.create(model=short, messages=HI)
    assert (by_short.choices[0].message.content, by_short.model) == (PLAIN_REPLY, short)
    assert httpx.get(f"{app.url}/api/profiles", timeout=5).json() == [], "no profile was needed"
    assert {m.id: m.model_extra for m in gateway.models.list()}[repo_id]["state"] == "ready"

    # Tuning it later "materialises" the default: the running server becomes the new profile's.
    pid = httpx.get(f"{app.url}/api/servers/{repo_id}", timeout=5).json()["pid"]
    made = httpx.post(f"{app.url}/api/profiles", json={"name": "tuned", "model": repo_id}, timeout=10)
    assert made.status_code == 201, made.text
    tuned = httpx.get(f"{app.url}/api/servers/tuned", timeout=5).json()
    assert (tuned["state"], tuned["pid"], tuned["implicit"]) == ("ready", pid, False)
    assert repo_id not in {m.id for m in gateway.models.list()}, "the model now answers through its profile"
    assert gateway.chat.completions.create(model=repo_id, messages=HI).model == repo_id


def test_a_folder_added_with_the_cli_answers_by_its_name(app, tmp_path: Path) -> None:
    folder = build_scripted_plain(tmp_path / "my-local-model")
    added = subprocess.run(
        [sys.executable, "-m", "mlxui", "models", "add", str(folder)],
        env=app.cli_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    reply = client(app).chat.completions.create(model="my-local-model", messages=HI)
    assert (reply.choices[0].message.content, reply.model) == (PLAIN_REPLY, "my-local-model")
    server = httpx.get(f"{app.url}/api/servers/my-local-model", timeout=5).json()
    assert (server["name"], server["label"], server["implicit"]) == (str(folder), "my-local-model", True)

    with pytest.raises(openai.NotFoundError) as caught:
        client(app).chat.completions.create(model="my-local-modle", messages=HI)
    assert "my-local-model" in caught.value.body["message"], "a close match is suggested"
