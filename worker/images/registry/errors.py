"""What a registry can refuse, as wire errors a client shows in docker's words.

A registry answers errors as ``{"errors": [{"code": "UNAUTHORIZED", "message": ...}]}``; docker
prints them as ``unauthorized: authentication required``, and so do these (``registry_error``).
"""

from __future__ import annotations

import msgspec

from protocol.errors import Forbidden, InvalidArgument, NotFound, Unavailable


class RegistryError(Unavailable):
    """The registry could not be reached, or answered something unusable."""

    code = "request.unavailable.registry"


class RegistryUnauthorized(Forbidden):
    """The registry refused the credentials (or wants some): ``unauthorized: ...``."""

    code = "request.forbidden.registry"


class ManifestUnknown(NotFound):
    """The registry has no such repository, tag or digest."""

    code = "request.not_found.manifest"


class RegistryRefused(InvalidArgument):
    """The registry refused a request as malformed (a push's blob or manifest, a name)."""

    code = "request.invalid_argument.registry"


class _ErrorItem(msgspec.Struct):
    code: str = ""
    message: str = ""


class _ErrorBody(msgspec.Struct):
    errors: list[_ErrorItem] = []


def error_text(status: int, body: bytes) -> str:
    """Docker's rendering of an error answer: ``code: message`` of each error, lower-cased
    code; the HTTP status when the body says nothing."""
    try:
        items = msgspec.json.decode(body[:65536], type=_ErrorBody).errors
    except msgspec.DecodeError:
        items = []
    parts = [f"{item.code.lower()}: {item.message}".strip(": ") for item in items[:5]
             if item.code or item.message]
    return "; ".join(parts)[:1000] or f"HTTP {status}"


def registry_error(status: int, body: bytes, what: str) -> Exception:
    """The wire error for a registry's failed answer to ``what`` (``pull busybox:1``)."""
    text = error_text(status, body)
    details = {"status": str(status), "request": what[:300]}
    if status == 401:
        if not text.startswith("unauthorized"):
            text = f"unauthorized: {text}" if text != "HTTP 401" else \
                "unauthorized: authentication required"
        return RegistryUnauthorized(text, details=details)
    if status == 403:
        return RegistryUnauthorized(f"denied: {text}" if "denied" not in text else text,
                                    details=details)
    if status == 404:
        return ManifestUnknown(f"{what}: {text if text != 'HTTP 404' else 'not found'}",
                               details=details)
    if status in (400, 405, 413, 416):
        return RegistryRefused(f"{what}: {text}", details=details)
    return RegistryError(f"{what}: {text}", details=details)
