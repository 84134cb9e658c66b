"""Registry authentication, pure parts: credentials and ``WWW-Authenticate`` challenges.

A registry answers an anonymous request with 401 and a challenge: ``Basic realm=...`` (send
the credentials on every request) or ``Bearer realm=...,service=...,scope=...`` (get a token
from the realm, with the credentials if any, and send ``Authorization: Bearer <token>``).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a user gave ``login`` (or a credential helper answered): a username and password,
    or an identity token (an OAuth refresh token, username ``<token>`` in docker's files)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


ANONYMOUS = Credentials()


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header; None if it is not one."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme or not scheme.isalpha():
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else (bare or "")
        params[match.group(1).lower()] = value
        position = match.end()
    return Challenge(scheme.lower(), params)


def scope_for(repository: str, actions: str) -> str:
    """A token scope: ``repository:library/busybox:pull`` (``pull,push`` for a push)."""
    return f"repository:{repository}:{actions}"
