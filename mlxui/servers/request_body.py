"""Reading an ASGI request's body with a size limit, for the gateway and its dialects."""

from __future__ import annotations

from starlette.types import Receive, Scope


class BodyTooLarge(Exception):
    """The body is over the limit (its sentence says the limit)."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, None when the client went away first; BodyTooLarge past `limit` bytes."""
    too_big = f"Request body is larger than {limit // (1024 * 1024)} MB."
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge(too_big)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(too_big)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)
