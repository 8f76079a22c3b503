"""Host and Origin checks against the real app over real HTTP and websockets."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mlxui.security import HostPolicy


def test_rejects_foreign_host_on_pages_and_api(app_process) -> None:
    for path in ("/models", "/api/status", "/healthz"):
        response = httpx.get(app_process.url + path, headers={"Host": "evil.example"})
        assert response.status_code == 403, path
        assert "Host not allowed" in response.json()["error"]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_accepts_loopback_host_names(app_process, host: str) -> None:
    response = httpx.get(app_process.url + "/api/status", headers={"Host": f"{host}:{app_process.port}"})
    assert response.status_code == 200


def test_status_shape(app_process) -> None:
    status = httpx.get(app_process.url + "/api/status").json()
    assert set(status) >= {"version", "backend", "url", "ready", "servers", "downloads"}
    assert status["ready"] is True
    assert status["backend"] in {"Metal", "CUDA", "CPU"}


def test_state_changing_request_with_foreign_origin_is_refused(app_process) -> None:
    foreign = httpx.post(app_process.url + "/api/status", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert "Origin not allowed" in foreign.json()["error"]["message"]
    same = httpx.post(app_process.url + "/api/status", headers={"Origin": app_process.url})
    assert same.status_code == 405  # reaches the app: the route exists for GET only


def test_websocket_from_foreign_origin_is_refused(app_process) -> None:
    async def handshake(origin: str) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", app_process.port)
        writer.write(
            (
                f"GET /_nicegui_ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{app_process.port}"
                f"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
            ).encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return int(status_line.split()[1])

    assert asyncio.run(handshake("http://evil.example")) == 403
    assert asyncio.run(handshake(app_process.url)) == 101


@pytest.mark.parametrize(
    ("bind", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8765", True),
        ("127.0.0.1", "localhost", True),
        ("127.0.0.1", "[::1]:8765", True),
        ("127.0.0.1", "evil.example", False),
        ("127.0.0.1", "evil.example:8765", False),
        ("127.0.0.1", "192.168.1.20:8765", False),
        ("127.0.0.1", "", False),
        ("0.0.0.0", "192.168.1.20:8765", True),  # LAN use after an explicit --host
        ("0.0.0.0", "evil.example", False),
        ("127.0.0.1", "localhost:18970@evil.com", False),  # userinfo: another host in disguise
        ("127.0.0.1", "localhost:abc", False),
        ("127.0.0.1", "localhost:99999", False),
        ("127.0.0.1", "localhost.:8765", False),
        ("127.0.0.1", "localhost:8765 ", True),
    ],
)
def test_host_policy(bind: str, host: str, allowed: bool) -> None:
    assert HostPolicy(bind).host_allowed(host) is allowed


def test_origin_policy() -> None:
    policy = HostPolicy("127.0.0.1", port=8765)
    own = "127.0.0.1:8765"
    assert policy.origin_allowed(None, own)
    assert policy.origin_allowed("http://127.0.0.1:8765", own)
    assert policy.origin_allowed("http://localhost:8765", own), "the same app, typed another way"
    assert not policy.origin_allowed("http://localhost:3000", own), "another local program's page"
    assert not policy.origin_allowed("http://127.0.0.1", own)
    assert not policy.origin_allowed("http://evil.example", own)
    assert not policy.origin_allowed("null", own)
    assert not policy.origin_allowed("file://", own)
    assert not policy.origin_allowed("http://localhost:8765@evil.example", own)


def test_origin_policy_beyond_loopback() -> None:
    """Bound to the LAN (--host): the page's own address is trusted, an IP address alone is not."""
    policy = HostPolicy("0.0.0.0", port=8765)
    assert policy.origin_allowed("http://192.168.1.20:8765", "192.168.1.20:8765")
    assert not policy.origin_allowed("http://192.168.1.20:3000", "192.168.1.20:8765")
    assert not policy.origin_allowed("http://192.168.1.99:8765", "192.168.1.20:8765")
