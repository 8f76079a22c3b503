"""What every JSON route shares: the error envelope, readiness, body limits and name checks.

Every error is `{"error": {"message", "type", "code", ...}}` with `code` the HTTP status: one
sentence a person can act on. FastAPI's own validation errors are turned into that envelope too: a
bad query parameter or a body that is not a JSON object is a 400 `invalid_request`; a bad field of
a good body is a 422 `validation_error` with `fields` (field -> sentence), as the forms show them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlxui.servers.profile_rules import NAME_PATTERN

if TYPE_CHECKING:
    from mlxui.services import Services


class ApiError(Exception):
    """An answer other than success: status, a type word, one sentence, and optional extras."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "code": self.status, **self.extra}
        return JSONResponse({"error": error}, status_code=self.status)


def install_error_handlers(app: FastAPI) -> None:
    """ApiError and FastAPI's validation errors answer in the envelope (on /api/ routes)."""

    async def on_api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_error(exc.errors()).response()

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not request.url.path.startswith("/api/"):  # pages keep FastAPI's own answers
            return await http_exception_handler(request, exc)
        if exc.status_code == 400:  # FastAPI's "error parsing the body": e.g. JSON nested too deep
            return ApiError(
                400, "invalid_request", "The body could not be read as JSON (too deeply nested?)."
            ).response()
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return ApiError(exc.status_code, kind, str(exc.detail)).response()

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def validation_error(errors: Sequence[Any]) -> ApiError:
    """One ApiError for FastAPI's list of validation errors (see the module's docstring)."""
    fields: dict[str, str] = {}
    for error in errors:
        where, *path = error.get("loc", ())
        name = ".".join(str(p) for p in path)
        kind, value = error.get("type", ""), error.get("input")
        if kind == "json_invalid":
            return ApiError(400, "invalid_request", f"The body is not JSON: {error.get('msg', '')}.")
        if where == "body" and not path:
            return ApiError(400, "invalid_request", "The body must be a JSON object.")
        if where != "body":
            return ApiError(400, "invalid_request", f"{name or where} {_query_sentence(kind, value, error)}")
        fields.setdefault(name, _field_sentence(kind, name, error))
    message = "; ".join(f"{field}: {text}" for field, text in fields.items())
    return ApiError(422, "validation_error", message, fields=fields)


def _query_sentence(kind: str, value: Any, error: Any) -> str:
    context = error.get("ctx") or {}
    if kind == "int_parsing":
        return f"must be a whole number, not {value!r}."
    if kind == "bool_parsing":
        return f"must be true or false, not {value!r}."
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = context.get("ge", context.get("le"))
        return f"must be {'at least' if kind == 'greater_than_equal' else 'at most'} {bound}."
    return f"is not valid: {error.get('msg', kind)}."


def _field_sentence(kind: str, name: str, error: Any) -> str:
    if kind == "extra_forbidden":
        return f"{name!r} is not a setting here."
    if kind == "missing":
        return "This is required."
    if kind.startswith("int_"):
        return "Give a whole number or leave it empty."
    if kind.startswith("float_"):
        return "Give a number or leave it empty."
    if kind.startswith("bool_"):
        return "Choose yes or no."
    if kind.startswith("string_"):
        return "Give this as text."
    return f"{error.get('msg', 'Not valid')}."


async def services_ready(services: Services) -> None:
    """Wait for start-up (the DB, profiles, downloads); ApiError 503 if it failed."""
    if not services.ready:
        with contextlib.suppress(TimeoutError):  # answered below: still starting
            await services.wait_started(30.0)
    if not services.ready:
        message = services.startup_error or "mlxui is still starting; try again in a moment."
        raise ApiError(503, "unavailable", message)


def check_name(name: str) -> str:
    """A profile name from a path, checked before any lookup (a dependency of the routes)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ApiError(
            400, "invalid_name", "A profile name is 1 to 64 letters, digits, dots, dashes or underscores."
        )
    return name


async def text_body(request: Request) -> str:
    """The body as UTF-8 text (a YAML export, say); its size is capped by `security.BodyLimit`."""
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_request", "The file is not UTF-8 text.") from exc
