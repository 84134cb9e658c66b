"""Errors as Docker's clients expect them: ``application/json`` ``{"message": ...}`` with the
status Docker gives (404 for a missing object, 409 for a conflict, 400 for bad parameters), and
the one table of what this front end does not serve yet, with the reason (``MISSING``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from protocol.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    ShoalError,
    Timeout,
    Unavailable,
    Unsupported,
)


class ApiError(Exception):
    """An answer other than success: its HTTP status and Docker's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_parameter(message: str) -> ApiError:
    return ApiError(400, message)


def no_such(kind: str, ref: str) -> ApiError:
    """Docker's words for a missing object: ``No such container: x``."""
    return ApiError(404, f"No such {kind}: {ref}")


# ShoalError classes and the status Docker answers for the same refusal (nearest class wins).
_STATUS: tuple[tuple[type[ShoalError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidArgument, 400),
    (Unsupported, 400),  # a request this daemon refuses as given (a bad parameter for it)
    (Forbidden, 403),
    (Timeout, 504),
    (Unavailable, 503),
)


def from_shoal(exc: ShoalError, kind: str = "", ref: str = "") -> ApiError:
    """The HTTP answer to a refusal from the daemon. A NotFound about the object the request
    names is said in Docker's words (``kind``/``ref``); other refusals keep shoal's message,
    which explains itself."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            if status == 404 and kind:
                return no_such(kind, ref)
            return ApiError(status, str(exc))
    return ApiError(500, f"{type(exc).__name__}: {exc}")


# What other parts of shoal will bring to this API, by the feature that is missing. Every
# endpoint and create field that needs one answers from here, so the list shrinks in one place.
MISSING: dict[str, str] = {
    "import": "importing a rootfs tar (shoal image import FILE NAME:TAG does)",
    "build": "build cache pruning (docker image prune clears the build cache)",
    "swarm": "Docker's swarm mode (shoal's own cluster verbs serve a cluster)",
    "changes": "a container's changes (docker diff)",
    "plugins": "plugins",
    "secrets": "secrets and configs",
}


def missing(feature: str, status: int = 501) -> ApiError:
    """The answer to a request for something ``MISSING`` names."""
    return ApiError(status, f"shoal's Docker API does not serve {MISSING[feature]} yet")


def missing_endpoint(feature: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A route handler that answers 501 for ``feature``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        raise missing(feature)

    return handler


def missing_object(kind: str, feature: str) -> Callable[[web.Request],
                                                        Awaitable[web.StreamResponse]]:
    """A route handler for inspecting one ``kind`` of object shoal does not serve here: 404, so
    that ``docker inspect NAME`` goes on to say "No such object", with the reason."""

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "")
        raise ApiError(404, f"No such {kind}: {name} (shoal's Docker API does not serve "
                            f"{MISSING[feature]} yet)")

    return handler


def json_error(status: int, message: str) -> web.Response:
    # Exactly ``application/json``, no charset: the docker CLI reads the message out of the
    # body only for that Content-Type, and prints the raw body for any other.
    return web.Response(body=json.dumps({"message": message}).encode(), status=status,
                        content_type="application/json")
