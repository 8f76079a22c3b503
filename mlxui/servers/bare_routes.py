"""The gateway's routes without the `/v1` prefix, as `mlx_lm.server` takes them.

`POST /chat/completions` and `POST /completions` always go to the gateway. `GET /models` is
also mlxui's own Models page, so it goes to the gateway only when the request is not a browser
loading a page: it sends a key (`Authorization` or `x-api-key`), is a CORS preflight, or it
asks for JSON (`Accept` names `application/json` and not `text/html`, as the SDKs do). Anything
else (a browser, curl's `*/*`, a test client) gets the page. docs/architecture.md §5.
"""

from __future__ import annotations

from starlette.types import Scope

PATHS = frozenset({"/chat/completions", "/completions"})
MODELS_PATH = "/models"


def serves(scope: Scope) -> bool:
    """Whether this HTTP request is for the gateway although its path lacks `/v1`."""
    path: str = scope["path"]
    return path.rstrip("/") in PATHS or (path == MODELS_PATH and wants_model_list(scope))


def wants_model_list(scope: Scope) -> bool:
    """A request for `/models` from an API client rather than a browser loading the page."""
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    if b"authorization" in headers or b"x-api-key" in headers:
        return True
    if scope.get("method") == "OPTIONS" and b"access-control-request-method" in headers:
        return True
    accept = headers.get(b"accept", b"").lower()
    return b"application/json" in accept and b"text/html" not in accept


def under_v1(scope: Scope) -> Scope:
    """The same request addressed to `/v1<path>`, where the gateway routes it."""
    path = "/v1" + scope["path"]
    return {**scope, "path": path, "raw_path": path.encode()}
