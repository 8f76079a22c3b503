"""The client of the app's own API that the CLI and the tray share: the app's error envelope, other
answers, no answer, a streamed GET, and proxies in the environment ignored for the loopback app.

A tiny HTTP server on 127.0.0.1 plays the app (each path a scripted answer); the CLI and tray tests
run the same client against the real app."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlxui.app_client import AppApiError, AppClient
from tests.harness.app_process import free_port

FIELDS = {"name": "Use up to 64 letters.", "port": "Must be between 1024 and 65535."}
ANSWERS: dict[str, tuple[int, str, bytes]] = {  # path -> status, content type, body
    "/api/status": (200, "application/json", b'{"app": "mlxui", "version": "0"}'),
    "/fields": (
        422,
        "application/json",
        json.dumps(
            {"error": {"message": "name: ...", "type": "validation_error", "code": 422, "fields": FIELDS}}
        ).encode(),
    ),
    "/failed": (
        500,
        "application/json",
        json.dumps(
            {
                "error": {
                    "message": "big did not start: out of memory",
                    "type": "start_failed",
                    "code": 500,
                    "log_tail": "Traceback ...\nMemoryError",
                    "server": {"name": "big", "state": "failed"},
                }
            }
        ).encode(),
    ),  # fmt: skip
    "/detail": (404, "application/json", b'{"detail": "Not Found"}'),
    "/plain": (502, "text/plain", b"Bad gateway\n"),
    "/healthz": (503, "application/json", b'{"status": "failed", "error": "The database is locked."}'),
    "/another-program/api/status": (200, "application/json", b'{"app": "jupyter"}'),
    "/other": (200, "application/json", b'{"hello": "world"}'),
    "/html": (200, "text/html", b"<html></html>"),
}


class FakeApp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            for line in (b"one\n", b"two\n"):
                self.wfile.write(line)
                self.wfile.flush()
            return
        status, kind, body = ANSWERS[self.path.partition("?")[0]]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def error_of(client: AppClient, path: str) -> AppApiError:
    with pytest.raises(AppApiError) as caught:
        client.call("GET", path)
    return caught.value


def test_success_is_the_json_answer(app_url: str) -> None:
    client = AppClient(app_url)
    assert client.status() == {"app": "mlxui", "version": "0"}
    assert client.call("GET", "/other") == {"hello": "world"}


def test_the_apps_error_envelope(app_url: str) -> None:
    client = AppClient(app_url)
    fields = error_of(client, "/fields")
    assert (fields.status, fields.kind, fields.message) == (422, "validation_error", "name: ...")
    assert str(fields) == "name: Use up to 64 letters.\nport: Must be between 1024 and 65535."

    failed = error_of(client, "/failed")
    assert (failed.status, failed.kind, failed.server_state) == (500, "start_failed", "failed")
    assert failed.message == "big did not start: out of memory"
    assert str(failed) == "big did not start: out of memory\nTraceback ...\nMemoryError"
    assert not failed.unreachable

    health = error_of(client, "/healthz")  # start-up failed: the sentence is a plain string
    assert (health.status, health.message) == (503, "The database is locked.")


def test_answers_without_the_envelope_say_who_answered_what(app_url: str) -> None:
    client = AppClient(app_url)
    assert str(error_of(client, "/detail")) == f"mlxui at {app_url} answered 404: Not Found"
    assert str(error_of(client, "/plain")) == f"mlxui at {app_url} answered 502: Bad gateway"
    html = error_of(client, "/html")
    assert html.status == 200 and "something other than JSON" in html.message


def test_another_program_on_the_port_is_not_mlxui(app_url: str) -> None:
    other = AppClient(app_url + "/another-program")  # its /api/status answers, but not as mlxui
    with pytest.raises(AppApiError) as caught:
        other.status()
    error = caught.value
    assert (error.kind, error.status, error.message) == (
        "not_mlxui",
        200,
        f"{app_url}/another-program answers, but not as mlxui",
    )


def test_nothing_listening_is_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for call in (
        lambda c: c.call("GET", "/api/status"),
        lambda c: c.text("GET", "/api/servers/x/logs"),
        lambda c: list(c.stream_text("/stream")),
    ):
        with pytest.raises(AppApiError) as caught:
            call(AppClient(url))
        assert caught.value.unreachable
        assert str(caught.value) == f"mlxui is not running at {url} (start it with `mlxui run`)"


def test_streamed_get(app_url: str) -> None:
    client = AppClient(app_url)
    assert "".join(client.stream_text("/stream", params={"lines": 3})) == "one\ntwo\n"
    with pytest.raises(AppApiError) as caught:
        list(client.stream_text("/failed"))
    assert caught.value.server_state == "failed" and caught.value.status == 500


def test_proxy_variables_do_not_divert_calls_to_the_app(
    app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens: a proxied call cannot succeed
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = AppClient(app_url)
    assert client.status()["app"] == "mlxui"
    assert "".join(client.stream_text("/stream")) == "one\ntwo\n"
