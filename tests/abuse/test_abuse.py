"""Hostile input against the real app: DNS rebinding, cross-site requests, odd ids and paths,
oversized bodies, fuzzed JSON, and a bounded soak through the gateway with leak checks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.harness.app_process import app_env, module_app
from tests.harness.models import PLAIN_REPLY

EVIL_IDS = ["../../etc/passwd", "..", "a/../../b", "/etc/passwd", "x" * 10_000, "org/\u202ename", "org/na\u200bme",
            "org/🙂", "org/name\x00", "org//name", " org/name"]  # fmt: skip


@pytest.fixture(scope="module")
def app(hub_cache, tmp_path_factory):
    with module_app(tmp_path_factory.mktemp("abuse") / "home", hub_cache.cache_dir) as app:
        httpx.post(
            f"{app.url}/api/profiles", json={"name": "plain", "model": hub_cache.repos["plain"]}, timeout=30
        )
        yield app


@pytest.mark.parametrize("path", ["/models", "/api/status", "/v1/models", "/metrics", "/api/servers"])
def test_dns_rebinding_host_is_refused_everywhere(app, path: str) -> None:
    response = httpx.get(app.url + path, headers={"Host": "attacker.example:8765"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/api/profiles", "/api/servers/plain/start", "/api/downloads"]
)
def test_cross_site_posts_are_refused(app, path: str) -> None:
    response = httpx.post(app.url + path, json={"model": "plain", "messages": [], "repo_id": "org/model"},
                          headers={"Origin": "https://attacker.example"})  # fmt: skip
    assert response.status_code == 403
    assert httpx.get(f"{app.url}/api/servers/plain").json()["state"] == "stopped", "nothing was started"
    assert httpx.get(f"{app.url}/api/downloads").json() == [], "nothing was downloaded"


@pytest.mark.parametrize("repo", [r for r in EVIL_IDS if r.strip() != "org/name"])  # spaces are trimmed
def test_odd_repo_ids_are_refused_by_the_downloads_api(app, repo: str) -> None:
    response = httpx.post(f"{app.url}/api/downloads", json={"repo_id": repo}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"], "a sentence says why"
    assert httpx.get(f"{app.url}/api/downloads").json() == []


def test_the_downloads_api_refuses_what_it_cannot_do(app) -> None:
    missing_id = httpx.post(f"{app.url}/api/downloads", json={})
    assert missing_id.status_code == 422 and missing_id.json()["error"]["fields"] == {
        "repo_id": "This is required."
    }
    listed = httpx.post(
        f"{app.url}/api/downloads", content=b"[1]", headers={"Content-Type": "application/json"}
    )
    assert (
        listed.status_code == 400 and listed.json()["error"]["message"] == "The body must be a JSON object."
    )
    as_form = httpx.post(f"{app.url}/api/downloads", content=b'{"repo_id": "org/model"}')
    assert as_form.status_code == 415, "a body not declared as JSON is refused (no CORS-simple requests)"
    missing = httpx.post(f"{app.url}/api/downloads/org/model/pause")
    assert missing.status_code == 404 and "no download of org/model" in missing.json()["error"]["message"]
    assert httpx.post(f"{app.url}/api/downloads/org/model/explode").status_code == 404


@pytest.mark.parametrize("model", EVIL_IDS)
def test_odd_model_ids_are_refused_by_the_api(app, model: str) -> None:
    response = httpx.post(f"{app.url}/api/profiles", json={"name": "evil", "model": model}, timeout=10)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"]["model"], "the model field says why"
    assert "evil" not in [p["name"] for p in httpx.get(f"{app.url}/api/profiles").json()]


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "../x", "a" * 65, "na me", "é", ""])
def test_odd_profile_names_are_refused(app, hub_cache, name: str) -> None:
    response = httpx.post(f"{app.url}/api/profiles", json={"name": name, "model": hub_cache.repos["plain"]})
    assert response.status_code == 422 and "name" in response.json()["error"]["fields"]


@pytest.mark.parametrize("repo", ["../../etc/passwd", "a/../../b", "org/\u202ename"])
def test_odd_repo_ids_get_one_line_from_the_cli(tmp_path, repo: str) -> None:
    for command in (["models", "info", repo], ["models", "pull", repo]):
        result = subprocess.run([sys.executable, "-m", "mlxui", *command], env=app_env(tmp_path),
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode in (1, 2), result
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            result.stderr
        )
    assert not any(tmp_path.rglob("passwd"))


def test_oversized_gateway_body_is_refused_without_swallowing_memory(app) -> None:
    before = psutil.Process(app.pid).memory_info().rss
    body = b'{"model": "plain", "messages": [{"role": "user", "content": "' + b"x" * 60_000_000 + b'"}]}'
    started = time.monotonic()
    try:
        response = httpx.post(f"{app.url}/v1/chat/completions", content=body, timeout=30,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 413
    except httpx.TransportError:
        pass  # the app may also close the connection once the limit is passed
    assert time.monotonic() - started < 15
    grown = psutil.Process(app.pid).memory_info().rss - before
    assert grown < 80_000_000, f"the app grew by {grown / 1e6:.0f} MB for a refused body"


FUZZ_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3))
FUZZ_BODIES = st.one_of(
    st.dictionaries(st.sampled_from(["model", "messages", "stream", "max_tokens", "x"]), FUZZ_VALUES),
    # a `model` that names no profile ("plain" is the only one), with or without the rest
    st.fixed_dictionaries({"model": st.text(max_size=20).filter(lambda m: m.casefold() != "plain")},
                          optional={"messages": FUZZ_VALUES, "stream": FUZZ_VALUES}),
    st.text(max_size=50), st.integers(), st.lists(st.text(max_size=5), max_size=3),
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(body={"model": "no-such-profile", "messages": [{"role": "user", "content": "hi"}]})
@example(body={"model": "", "messages": []})
@given(body=FUZZ_BODIES)
def test_fuzzed_gateway_and_api_bodies_get_json_4xx(app, body) -> None:
    for path in ("/v1/chat/completions", "/v1/completions", "/api/profiles"):
        response = httpx.post(app.url + path, content=json.dumps(body), timeout=20,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text[:200])
        message = response.json()["error"]["message"]
        assert isinstance(message, str) and message, (path, body, response.text[:200])


def test_32_streams_and_a_1000_request_soak_leak_nothing(app) -> None:
    assert httpx.post(f"{app.url}/api/servers/plain/start", timeout=60).status_code == 200
    proc = psutil.Process(app.pid)

    async def one(client: httpx.AsyncClient, stream: bool) -> str:
        body = {"model": "plain", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        if not stream:
            response = await client.post(f"{app.url}/v1/chat/completions", json=body)
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"]
        text = ""
        async with client.stream("POST", f"{app.url}/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    text += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        return text

    async def run(total: int, concurrency: int, stream: bool) -> list[str]:
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

            async def guarded() -> str:
                async with limit:
                    return await one(client, stream)

            return await asyncio.gather(*(guarded() for _ in range(total)))

    asyncio.run(run(4, 4, True))  # warm up
    fds, conns = proc.num_fds(), len(proc.net_connections())
    started = time.monotonic()
    assert asyncio.run(run(32, 32, True)) == [PLAIN_REPLY] * 32
    replies = asyncio.run(run(1000, 16, False))
    soak_s = time.monotonic() - started
    assert replies == [PLAIN_REPLY] * 1000, "zero errors"
    time.sleep(1.0)
    fds_after, conns_after = proc.num_fds(), len(proc.net_connections())
    print(
        f"soak: 32 streams + 1000 requests in {soak_s:.1f} s; fds {fds}->{fds_after}, conns {conns}->{conns_after}"
    )
    assert fds_after <= fds + 4 and conns_after <= conns + 4, "no file-descriptor or connection leak"


@pytest.mark.browser
def test_xss_in_search_url_params_is_inert(app, chrome) -> None:
    from urllib.parse import quote

    from selenium.webdriver.common.by import By

    from tests.harness.browser import find_marked, wait_for

    q, author = "<script>window.__xss=1</script>", "<img src=x onerror=window.__xss=2>"
    chrome.get(f"{app.url}/models?q={quote(q)}&author={quote(author)}")
    banner = wait_for(lambda: (b := find_marked(chrome, "hub-banner")).is_displayed() and b, what="banner")
    assert "not a Hub user or organisation name" in banner.text
    assert not chrome.execute_script("return window.__xss || null")
    assert not chrome.find_elements(By.CSS_SELECTOR, "img[onerror]")
    page_state = " ".join(
        s.get_attribute("innerHTML") or "" for s in chrome.find_elements(By.TAG_NAME, "script")
    )
    assert q not in page_state and author not in page_state, "payloads travel escaped in the page state"
