"""Docker-style image references: parse, validate and normalise (pure, no I/O).

``busybox`` means ``busybox:latest``; ``docker.io/library/busybox`` and ``busybox`` are the
same image and are shown in the short ("familiar") form, as Docker shows them. A reference is
``[domain/]path[:tag][@sha256:digest]``; anything else is an ``InvalidReference`` that says
which part is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.images.digest import is_digest
from worker.images.errors import InvalidReference

DEFAULT_TAG = "latest"
DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
MAX_NAME_LEN = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference; ``name`` is familiar (``busybox``, ``example.com/team/app``)."""

    name: str
    tag: str | None
    digest: str | None = None

    @property
    def tagged(self) -> str:
        """``name:tag`` (the key tags are stored under); needs a tag."""
        if self.tag is None:
            raise InvalidReference(f"{self} has no tag")
        return f"{self.name}:{self.tag}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _bad(text: str, why: str) -> InvalidReference:
    return InvalidReference(f"invalid reference format {text[:300]!r}: {why}",
                            details={"reference": text[:300], "reason": why})


def _is_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def familiar_name(domain: str | None, path: str) -> str:
    """The short form Docker shows: the default registry and ``library/`` are left out."""
    if domain in (None, DEFAULT_DOMAIN, "index.docker.io"):
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX):]:
            return path[len(OFFICIAL_PREFIX):]
        return path
    return f"{domain}/{path}"


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse ``text``; with ``default_tag`` a reference without tag or digest gets ``latest``."""
    if not text:
        raise _bad(text, "empty reference")
    if len(text) > 2 * MAX_NAME_LEN:
        raise _bad(text, "too long")
    rest, at, digest = text.partition("@")
    if at and not is_digest(digest):
        raise _bad(text, "digest must be sha256: and 64 lowercase hex digits")
    # A tag follows the last ':' after the last '/'; an earlier ':' is a registry port.
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise _bad(text, f"tag {tag[:150]!r} must be 1-128 of [A-Za-z0-9_.-], "
                             "not starting with '.' or '-'")
    if not name:
        raise _bad(text, "empty repository name")
    parts = name.split("/")
    domain: str | None = None
    if len(parts) > 1 and _is_domain(parts[0]):
        domain = parts[0]
        if not _DOMAIN.fullmatch(domain):
            raise _bad(text, f"bad registry host {domain!r}")
        parts = parts[1:]
    for part in parts:
        if _COMPONENT.fullmatch(part):
            continue
        if _COMPONENT.fullmatch(part.lower()):
            raise _bad(text, "repository name must be lowercase")
        raise _bad(text, f"bad name component {part[:100]!r}: lowercase letters, digits and "
                         "separators (. _ __ -) between them")
    path = "/".join(parts)
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    full = f"{domain}/{path}" if domain else path
    if len(full) > MAX_NAME_LEN:
        raise _bad(text, f"repository name longer than {MAX_NAME_LEN} characters")
    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(familiar_name(domain, path), tag, digest if at else None)
