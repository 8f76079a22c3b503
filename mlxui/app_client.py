"""The one client of the running app's own HTTP API, shared by the CLI and the tray.

The app is on this machine, so every call ignores HTTP(S)_PROXY / ALL_PROXY (`trust_env=False`):
a proxy would answer for an app it cannot reach, or see the loopback traffic. Every answer other
than success becomes one `AppApiError`, whether the app sent its error envelope
`{"error": {"message", "type", "code", ...}}`, something else answered, or nothing did.

It imports neither the web layer nor the UI, so `mlxui.cli` and `mlxui.system` stay light.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

NOT_RUNNING = "mlxui is not running at {url} (start it with `mlxui run`)"
DEFAULT_TIMEOUT_S = 30.0


class AppApiError(Exception):
    """The app refused a call, or did not answer (`status` 0, `kind` "unreachable").

    `message` is the one sentence; `str()` adds what a terminal shows besides: one line per field
    error, or a failed server's last log lines. `error` is the app's envelope as sent ({} if none).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        kind: str = "unreachable",
        error: Mapping[str, Any] | None = None,
    ) -> None:
        self.message, self.status, self.kind = message, status, kind
        self.error: Mapping[str, Any] = error or {}
        super().__init__(self._terminal_text())

    @property
    def unreachable(self) -> bool:
        return self.status == 0

    @property
    def server_state(self) -> str | None:
        """The server's state when a start or restart failed (the envelope carries the server)."""
        server = self.error.get("server")
        return server.get("state") if isinstance(server, Mapping) else None

    def _terminal_text(self) -> str:
        fields = self.error.get("fields")
        if isinstance(fields, Mapping) and fields:  # one line per field, as a form shows them
            return "\n".join(f"{field}: {text}" for field, text in fields.items())
        tail = self.error.get("log_tail")
        return f"{self.message}\n{tail}" if tail else self.message


class AppClient:
    """Calls to the mlxui app at `base_url` (e.g. Config.base_url). Each call is its own short
    connection: the callers make a handful of calls, some from two threads at once."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """The JSON answer to `method path` (kwargs as httpx takes them: json=, content=, params=)."""
        response = self._request(method, path, timeout, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise AppApiError(
                f"mlxui at {self.base_url} answered {path} with something other than JSON.",
                status=response.status_code,
                kind="bad_answer",
            ) from exc

    def text(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> str:
        """The answer's text (logs, YAML exports)."""
        return self._request(method, path, timeout, **kwargs).text

    def status(self, *, timeout: float | None = None) -> dict[str, Any]:
        """GET /api/status, checked to come from mlxui (another program may hold the port)."""
        body = self.call("GET", "/api/status", timeout=timeout)
        if not isinstance(body, dict) or body.get("app") != "mlxui":
            raise AppApiError(f"{self.base_url} answers, but not as mlxui", status=200, kind="not_mlxui")
        return body

    def stream_text(self, path: str, *, params: Mapping[str, Any] | None = None) -> Iterator[str]:
        """GET `path` and yield its text as it arrives, with no read timeout (a log follow waits
        for new lines as long as it takes). Closing the iterator closes the connection."""
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            with httpx.stream(
                "GET", self.base_url + path, params=params, timeout=timeout, trust_env=False
            ) as response:
                if not response.is_success:
                    response.read()
                    raise self._error_from(response)
                yield from response.iter_text()
        except httpx.ConnectError as exc:
            raise self._not_running() from exc
        except httpx.TransportError as exc:
            raise AppApiError(
                f"Lost the connection to mlxui at {self.base_url}: {exc or type(exc).__name__}"
            ) from exc

    def _request(self, method: str, path: str, timeout: float | None, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(
                method,
                self.base_url + path,
                timeout=self.timeout if timeout is None else timeout,
                trust_env=False,
                **kwargs,
            )
        except httpx.ConnectError as exc:
            raise self._not_running() from exc
        except httpx.TransportError as exc:
            raise AppApiError(
                f"mlxui at {self.base_url} did not answer: {exc or type(exc).__name__}"
            ) from exc
        if not response.is_success:
            raise self._error_from(response)
        return response

    def _not_running(self) -> AppApiError:
        return AppApiError(NOT_RUNNING.format(url=self.base_url))

    def _error_from(self, response: httpx.Response) -> AppApiError:
        """The app's envelope when it sent one; else what answered, in a sentence."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return AppApiError(
                error["message"], status=status, kind=str(error.get("type") or "error"), error=error
            )
        if isinstance(error, str) and error:  # /healthz while start-up failed: {"error": "..."}
            return AppApiError(error, status=status, kind="error")
        detail = body.get("detail") if isinstance(body, dict) else None  # FastAPI's own answers
        text = detail if isinstance(detail, str) else response.text.strip()[:200]
        return AppApiError(f"mlxui at {self.base_url} answered {status}: {text}", status=status, kind="http")
