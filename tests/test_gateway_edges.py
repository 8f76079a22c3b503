"""The gateway's friendly edges on the real app: routes without `/v1`, JSON 404s, and CORS for
browser-based clients (a page on another loopback port, or an origin in MLXUI_ORIGINS, calls the
gateway from real Chromium; a foreign origin is refused). docs/architecture.md §5, docs/security.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mlxui.config import ConfigError, parse_origins
from mlxui.servers import bare_routes
from mlxui.servers.cors import CorsPolicy, allowed_request_headers
from tests.harness import procguard
from tests.harness.app_process import module_app
from tests.harness.browser import new_driver, quit_driver, wait_for
from tests.harness.models import PLAIN_REPLY
from tests.harness.page_site import PageSite

KEY = "edge-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def site() -> Iterator[PageSite]:
    pages = PageSite()
    yield pages
    pages.close()


@pytest.fixture(scope="module")
def app(hub_cache, tmp_path_factory, site: PageSite):
    home = tmp_path_factory.mktemp("edges") / "home"
    with module_app(home, hub_cache.cache_dir, env={"MLXUI_ORIGINS": site.origin("friend.test")}) as app:
        created = httpx.post(
            f"{app.url}/api/profiles", json={"name": "plain", "model": hub_cache.repos["plain"]}
        )
        assert created.status_code == 201, created.text
        assert httpx.put(f"{app.url}/api/settings", json={"gateway_key": KEY}).status_code == 200
        yield app


@pytest.fixture(scope="module")
def browser():
    """A Chromium where every `*.test` name is this machine: pages of other origins, served here."""
    driver = new_driver(extra_args=("--host-resolver-rules=MAP *.test 127.0.0.1",))
    procguard.keep(driver.service.process.pid)
    yield driver
    pid = driver.service.process.pid
    quit_driver(driver)
    procguard.release(pid)


# --- fast: the rules themselves ---------------------------------------------------------------


def test_cors_policy_takes_loopback_at_any_port_and_the_listed_origins() -> None:
    policy = CorsPolicy(["https://chat.example:8443"])
    for origin in ("http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]:8080", "http://localhost"):
        assert policy.allows(origin), origin
    assert policy.allows("https://chat.example:8443")
    for origin in (None, "", "null", "http://evil.example", "https://chat.example", "http://localhost.evil.example",
                   "http://localhost:3000@evil.example", "file://", "http://127.0.0.2:3000"):  # fmt: skip
        assert not policy.allows(origin), origin
    kept = allowed_request_headers("Authorization, content-type, X-Stainless-Lang, x-evil")
    assert kept == b"authorization, content-type, x-stainless-lang"


def test_mlxui_origins_are_exact_origins() -> None:
    assert parse_origins(" https://Chat.example:8443/ , http://lan-box:3000,") == (
        "https://chat.example:8443",
        "http://lan-box:3000",
    )
    for bad in ("chat.example", "ftp://x", "http://x/path", "http://x:99999"):
        with pytest.raises(ConfigError, match="MLXUI_ORIGINS"):
            parse_origins(bad)


def test_models_is_a_page_for_a_browser_and_a_list_for_a_client() -> None:
    def scope(path: str, method: str = "GET", **headers: str) -> dict:
        return {
            "path": path,
            "method": method,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }

    assert not bare_routes.serves(scope("/models", accept=BROWSER_ACCEPT))
    assert not bare_routes.serves(scope("/models"))  # curl's */* or no Accept: the page
    assert not bare_routes.serves(scope("/models", accept="*/*"))
    assert bare_routes.serves(scope("/models", accept="application/json"))
    assert bare_routes.serves(scope("/models", accept=BROWSER_ACCEPT, authorization="Bearer k"))
    assert bare_routes.serves(scope("/chat/completions", "POST")) and bare_routes.serves(
        scope("/completions/")
    )
    assert not bare_routes.serves(scope("/models/org/x")) and not bare_routes.serves(scope("/chat"))


# --- the real app over HTTP -------------------------------------------------------------------


def test_the_gateway_answers_without_the_v1_prefix(app) -> None:
    chat = httpx.post(f"{app.url}/chat/completions", json={"model": "plain", **HI}, headers=AUTH, timeout=60)
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"] == PLAIN_REPLY and chat.json()["model"] == "plain"
    text = httpx.post(f"{app.url}/completions", json={"model": "plain", "prompt": "hi", "max_tokens": 5},
                      headers=AUTH, timeout=60)  # fmt: skip
    assert text.status_code == 200 and text.json()["object"] == "text_completion", text.text
    assert httpx.post(f"{app.url}/chat/completions", json={"model": "plain", **HI}).status_code == 401
    listed = httpx.get(f"{app.url}/models", headers=AUTH)
    assert listed.json()["object"] == "list" and "plain" in [m["id"] for m in listed.json()["data"]]
    assert (
        httpx.get(f"{app.url}/models", headers={"Accept": "application/json"}).status_code == 401
    )  # the key
    page = httpx.get(f"{app.url}/models", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    httpx.post(f"{app.url}/api/servers/plain/stop", timeout=30)


def test_every_404_under_the_gateway_is_json(app) -> None:
    for method, path in (("GET", "/v1/anything"), ("POST", "/v1/chat/completionsx"), ("GET", "/v1"),
                         ("POST", "/v1/anything/else"), ("GET", "/v1/models/no-such-model")):  # fmt: skip
        answer = httpx.request(
            method, f"{app.url}{path}", headers={**AUTH, "Content-Type": "application/json"}
        )
        assert answer.status_code == 404, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.json()["error"]["message"], path


def test_preflight_and_cors_headers_for_allowed_origins_only(app, site: PageSite) -> None:
    asks = {"Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-api-key,anthropic-version"}  # fmt: skip
    for origin in ("http://localhost:3000", "http://127.0.0.1:5173", site.origin("friend.test")):
        for path in ("/v1/chat/completions", "/v1/messages", "/chat/completions", "/models"):
            pre = httpx.options(f"{app.url}{path}", headers={"Origin": origin, **asks})
            assert pre.status_code == 204, (origin, path, pre.text)
            assert pre.headers["access-control-allow-origin"] == origin
            assert "POST" in pre.headers["access-control-allow-methods"]
            assert (
                pre.headers["access-control-allow-headers"]
                == "authorization, content-type, x-api-key, anthropic-version"
            )
            assert "access-control-allow-credentials" not in pre.headers
    for origin in ("http://evil.example", site.origin("evil.test"), "null"):
        refused = httpx.options(f"{app.url}/v1/chat/completions", headers={"Origin": origin, **asks})
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers, origin
    cross = {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "cross-site", **AUTH}
    listed = httpx.get(f"{app.url}/v1/models", headers=cross)
    assert (
        listed.status_code == 200 and listed.headers["access-control-allow-origin"] == "http://localhost:3000"
    )
    missing = httpx.get(f"{app.url}/v1/nothing", headers=cross)
    assert (
        missing.status_code == 404
        and missing.headers["access-control-allow-origin"] == "http://localhost:3000"
    )
    # the app's own API keeps its stricter rule: another port's page may not touch it
    api = httpx.post(f"{app.url}/api/profiles", json={"name": "x", "model": "a/b"}, headers=cross)
    assert api.status_code == 403


# --- real Chromium ----------------------------------------------------------------------------

CLIENT_PAGE = """<script>
window.result = null;
fetch("%(url)s/v1/chat/completions", {method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer %(key)s"},
      body: JSON.stringify({model: "plain", messages: [{role: "user", content: "hi"}], max_tokens: 20})})
  .then((r) => r.json()).then((j) => { window.result = "reply: " + j.choices[0].message.content; },
                              (e) => { window.result = "blocked: " + e; });
</script>"""


def test_a_browser_client_on_another_loopback_port_gets_the_reply(app, site: PageSite, browser) -> None:
    site.pages["/client.html"] = CLIENT_PAGE % {"url": app.url, "key": KEY}
    for name, expected in (("localhost", f"reply: {PLAIN_REPLY}"), ("friend.test", f"reply: {PLAIN_REPLY}"),
                           ("evil.test", "blocked: TypeError: Failed to fetch")):  # fmt: skip
        browser.get(f"{site.origin(name)}/client.html")
        result = wait_for(lambda: browser.execute_script("return window.result"), timeout=60, what=name)
        assert result == expected, name
    httpx.post(f"{app.url}/api/servers/plain/stop", timeout=30)
