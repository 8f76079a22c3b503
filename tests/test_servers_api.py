"""/api/servers and /api/profiles on the real app process, with real mlx_lm servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tests.harness.app_process import AppProcess, module_app
from tests.harness.fixtures_models import HubCache, ModelDirs
from tests.harness.models import PLAIN_REPLY, UNLOADABLE_ERROR, build_unloadable

pytestmark = pytest.mark.slow

PLAIN = "mlxui-test/scripted-plain"
YAML = {"Content-Type": "application/yaml"}
NAME_RULE = "Use up to 64 letters, digits, dots, dashes or underscores (no spaces)."


@pytest.fixture(scope="module")
def app(hub_cache: HubCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with module_app(tmp_path_factory.mktemp("servers-api-home"), hub_cache.cache_dir) as running:
        yield running


@pytest.fixture
def api(app: AppProcess) -> Iterator[httpx.Client]:
    """A client; after the test every server is stopped and every profile deleted."""
    with httpx.Client(base_url=app.url, timeout=90, trust_env=False) as client:
        yield client
        assert client.post("/api/servers/stop-all").status_code == 200
        for profile in client.get("/api/profiles").json():
            assert client.delete(f"/api/profiles/{profile['name']}").status_code == 200


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["message"]
    return error


def chat(port: int) -> str:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30, trust_env=False
    )
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_bad_profiles_get_field_messages(api: httpx.Client) -> None:
    error = error_of(api.post("/api/profiles", json={"name": "bad name", "model": PLAIN, "port": 80}), 422)
    assert error["type"] == "validation_error"
    assert error["fields"] == {"name": NAME_RULE, "port": "Must be between 1024 and 65535."}
    missing = error_of(api.post("/api/profiles", json={"name": "x", "model": "mlxui-test/not-here"}), 422)
    assert missing["fields"] == {
        "model": "mlxui-test/not-here is not downloaded: download it on the Models page first."
    }
    json_header = {"Content-Type": "application/json"}
    assert error_of(api.post("/api/profiles", content=b"not json", headers=json_header), 400)["type"] == (
        "invalid_request"
    )
    as_text = error_of(api.post("/api/profiles", content=b'{"name": "x"}'), 415)  # a form-like body
    assert as_text["message"] == "Send the body as JSON, with the header Content-Type: application/json."
    assert (
        error_of(api.get("/api/servers/nope"), 404)["message"] == "There is no model or profile named 'nope'."
    )
    assert error_of(api.post("/api/servers/bad%09name/start"), 400)["type"] == "invalid_name"
    assert api.get("/api/profiles").json() == []


def test_start_answer_restart_logs_stop(api: httpx.Client, app: AppProcess) -> None:
    created = api.post("/api/profiles", json={"name": "plain", "model": PLAIN, "max_tokens": 64})
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "lm" and created.json()["port"] is None
    listed = api.get("/api/servers").json()
    assert [(s["name"], s["state"], s["pid"]) for s in listed] == [("plain", "stopped", None)]
    assert listed[0]["profile"]["max_tokens"] == 64

    started = api.post("/api/servers/plain/start")
    assert started.status_code == 200, started.text
    server = started.json()
    assert server["state"] == "ready" and alive(server["pid"])
    assert chat(server["port"]) == PLAIN_REPLY
    status = api.get("/api/status").json()
    assert [(s["name"], s["state"], s["pid"]) for s in status["servers"]] == [
        ("plain", "ready", server["pid"])
    ]

    restarted = api.post("/api/servers/plain/restart").json()
    assert restarted["state"] == "ready" and restarted["pid"] != server["pid"]
    assert not alive(server["pid"])
    assert chat(restarted["port"]) == PLAIN_REPLY

    logs = api.get("/api/servers/plain/logs", params={"lines": 200})
    assert logs.status_code == 200 and logs.headers["x-log-path"].endswith("plain.log")
    runs = [line for line in logs.text.splitlines() if line.startswith("=== mlxui ")]
    assert len(runs) == 2 and "mlx_lm.server --model mlxui-test/scripted-plain" in runs[1]
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in logs.text  # the server's own request log
    assert len(api.get("/api/servers/plain/logs", params={"lines": 3}).text.splitlines()) == 3
    assert error_of(api.get("/api/servers/plain/logs?lines=many"), 400)["message"] == (
        "lines must be a whole number, not 'many'."
    )

    stopped = api.post("/api/servers/plain/stop").json()
    assert (stopped["state"], stopped["pid"], stopped["port"]) == ("stopped", None, None)
    assert not alive(restarted["pid"])

    # One rule for every face: deleting the profile of a running server stops that server first.
    again = api.post("/api/servers/plain/start").json()
    assert api.delete("/api/profiles/plain").json() == {"deleted": "plain", "stopped": True}
    assert not alive(again["pid"]), "the server of a deleted profile must not keep running"
    assert api.get("/api/servers").json() == []
    assert error_of(api.post("/api/servers/plain/start"), 404)["type"] == "not_found"


def test_follow_sends_new_log_lines_and_ends(api: httpx.Client, app: AppProcess) -> None:
    api.post("/api/profiles", json={"name": "tail", "model": PLAIN})
    port = api.post("/api/servers/tail/start").json()["port"]
    received: list[str] = []
    finished = threading.Event()

    def follow() -> None:
        with httpx.stream("GET", f"{app.url}/api/servers/tail/logs/stream?lines=1&max_s=2", timeout=10) as r:
            for chunk in r.iter_text():
                received.append(chunk)
        finished.set()

    reader = threading.Thread(target=follow, daemon=True)
    started = time.monotonic()
    reader.start()
    _until(lambda: received, 5.0)
    assert len("".join(received).splitlines()) == 1  # the tail asked for
    chat(port)  # the server logs the request: it must arrive through the open stream
    _until(lambda: "POST /v1/chat/completions" in "".join(received[1:]), 5.0)
    assert finished.wait(6.0), "the stream did not end after max_s"
    assert 1.5 < time.monotonic() - started < 6.0


def test_stop_all_and_a_start_that_does_not_wait(api: httpx.Client) -> None:
    api.post("/api/profiles", json={"name": "one", "model": PLAIN})
    api.post("/api/profiles", json={"name": "two", "model": PLAIN})
    queued = api.post("/api/servers/one/start", params={"wait": "false"})
    assert queued.status_code == 202 and queued.json()["state"] in ("starting", "loading")
    two = api.post("/api/servers/two/start").json()
    _until(lambda: api.get("/api/servers/one").json()["state"] == "ready", 60.0)
    one = api.get("/api/servers/one").json()
    result = api.post("/api/servers/stop-all").json()
    assert result["stopped"] == ["one", "two"]
    assert [(s["name"], s["state"]) for s in result["servers"]] == [("one", "stopped"), ("two", "stopped")]
    assert not alive(one["pid"]) and not alive(two["pid"])
    assert api.post("/api/servers/stop-all").json()["stopped"] == []


def test_a_failed_start_answers_500_with_the_log_tail(
    api: httpx.Client, model_dirs: ModelDirs, tmp_path: Path
) -> None:
    bad = build_unloadable(tmp_path / "unloadable")
    api.post("/api/profiles", json={"name": "broken", "model": str(bad)})
    error = error_of(api.post("/api/servers/broken/start"), 500)
    assert error["type"] == "start_failed"
    assert error["message"].startswith("broken did not start: The server failed to load the model:")
    assert UNLOADABLE_ERROR in error["message"]
    assert error["log_tail"].startswith("Last lines of ") and "Traceback" in error["log_tail"]
    assert error["server"]["state"] == "failed" and error["server"]["pid"] is None
    assert api.get("/api/servers/broken").json()["error"] == error["detail"]


def test_edit_duplicate_export_import_round_trip(api: httpx.Client) -> None:
    api.post("/api/profiles", json={"name": "a", "model": PLAIN, "temperature": 0.3, "idle_ttl": 600})
    api.post(
        "/api/profiles", json={"name": "b", "model": PLAIN, "chat_template_args": {"enable_thinking": False}}
    )
    assert api.put("/api/profiles/a", json={"max_tokens": 32}).json()["max_tokens"] == 32
    assert max_tokens_of(api, "a") == (32, 32), "saved, and the server's profile follows"
    bad_edit = error_of(api.put("/api/profiles/a", json={"top_p": 3}), 422)
    assert bad_edit["fields"] == {"top_p": "Must be above 0 up to 1."}
    assert error_of(api.put("/api/profiles/zzz", json={}), 404)["type"] == "not_found"
    copy = api.post("/api/profiles/a/duplicate")
    assert copy.status_code == 201 and copy.json()["name"] == "a-copy" and copy.json()["temperature"] == 0.3
    assert "a-copy" in [s["name"] for s in api.get("/api/servers").json()]  # the supervisor knows it
    api.delete("/api/profiles/a-copy")
    before = api.get("/api/profiles").json()

    exported = api.get("/api/profiles/export")
    assert exported.headers["content-type"].startswith("application/yaml")
    assert [p["name"] for p in yaml.safe_load(exported.text)["profiles"]] == ["a", "b"]
    for name in ("a", "b"):
        api.delete(f"/api/profiles/{name}")
    assert api.post("/api/profiles/import", content=exported.text, headers=YAML).json() == {
        "imported": ["a", "b"]
    }
    assert api.get("/api/profiles").json() == before
    assert [s["name"] for s in api.get("/api/servers").json()] == ["a", "b"]

    # All or nothing: a clash on "a" also keeps "c" out.
    mixed = yaml.safe_dump({"version": 1, "profiles": [{"name": "c", "model": PLAIN}, before[0]]})
    clash = error_of(api.post("/api/profiles/import", content=mixed, headers=YAML), 422)
    assert clash["fields"] == {"profiles[1] (a).name": "A profile named 'a' already exists."}
    assert [p["name"] for p in api.get("/api/profiles").json()] == ["a", "b"]
    replaced = api.post("/api/profiles/import", params={"replace": "true"}, content=mixed, headers=YAML)
    assert replaced.json() == {"imported": ["a", "c"]}
    broken = error_of(api.post("/api/profiles/import", content=b"profiles: [unclosed", headers=YAML), 422)
    assert list(broken["fields"]) == ["file"]


def test_a_foreign_origin_cannot_change_anything(api: httpx.Client, app: AppProcess) -> None:
    api.post("/api/profiles", json={"name": "guarded", "model": PLAIN})
    evil = {"Origin": "http://evil.example"}
    assert error_of(api.post("/api/servers/guarded/start", headers=evil), 403)["type"] == "forbidden"
    assert error_of(api.post("/api/profiles", headers=evil, json={"name": "x", "model": PLAIN}), 403)
    assert error_of(api.delete("/api/profiles/guarded", headers=evil), 403)
    assert error_of(api.put("/api/profiles/guarded", headers=evil, json={"max_tokens": 4}), 403)
    assert api.get("/api/servers/guarded").json()["state"] == "stopped"
    assert [p["name"] for p in api.get("/api/profiles").json()] == ["guarded"]
    assert max_tokens_of(api, "guarded") == (None, None), "the foreign edit changed nothing"
    same_site = api.put("/api/profiles/guarded", headers={"Origin": app.url}, json={"max_tokens": 8})
    assert same_site.status_code == 200 and same_site.json()["max_tokens"] == 8
    assert max_tokens_of(api, "guarded") == (8, 8), "saved, and the server's profile follows"


def max_tokens_of(api: httpx.Client, name: str) -> tuple[int | None, int | None]:
    """(`max_tokens` of the saved profile, of the profile the server would start with)."""
    saved = next(p for p in api.get("/api/profiles").json() if p["name"] == name)
    return saved.get("max_tokens"), api.get(f"/api/servers/{name}").json()["profile"].get("max_tokens")


def test_settings_apply_to_every_face(api: httpx.Client) -> None:
    """The default idle stop applies to profiles made through the API (and so the CLI), not only the
    Settings page's editor; the gateway key can be set here and is never read back."""
    try:
        changed = api.put("/api/settings", json={"default_idle_ttl": 300, "gateway_key": "sekrit-key-1"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["default_idle_ttl"] == 300 and changed.json()["gateway_key_set"] is True
        assert "sekrit-key-1" not in api.get("/api/settings").text
        assert api.post("/api/profiles", json={"name": "d", "model": PLAIN}).json()["idle_ttl"] == 300
        never = api.post("/api/profiles", json={"name": "n", "model": PLAIN, "idle_ttl": None}).json()
        assert never["idle_ttl"] is None, "an explicit null means never, not the default"
        unauthorized = api.post("/v1/chat/completions", json={"model": "d", "messages": []})
        assert unauthorized.status_code == 401, "the key set through the API guards /v1 at once"

        bad = error_of(api.put("/api/settings", json={"max_running": 0, "on_quit": "explode"}), 422)
        assert bad["fields"] == {
            "max_running": "Must be between 1 and 64.",
            "on_quit": "Choose 'stop' (stop the servers) or 'keep' (keep them running).",
        }
        assert api.get("/api/settings").json()["on_quit"] == "stop", "a refused change saves nothing"
        assert error_of(api.put("/api/settings", json={"colour": "red"}), 422)["fields"] == {
            "colour": "'colour' is not a setting here."
        }
    finally:
        reset = {"default_idle_ttl": None, "gateway_key": None, "max_running": None}
        assert api.put("/api/settings", json=reset).status_code == 200


def _until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {timeout} s")
        time.sleep(0.05)
