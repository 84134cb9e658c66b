"""The base of every message, the generic replies, and the registry options of a pull or push."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated

import msgspec

from protocol.refs import SenderRef
from protocol.specs import (
    Name,
    NonNegInt,
    Text,
)


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of everything that travels on a channel."""


# --- generic replies -----------------------------------------------------------------------------
class Ok(Message, tag="ok", frozen=True, kw_only=True):
    """A verb succeeded and has nothing to say."""


class Echo(Message, tag="echo", frozen=True, kw_only=True):
    """A request the channels layer uses in demos and benchmarks; answered with ``Echoed``."""

    data: bytes = b""
    reply: SenderRef


class Echoed(Message, tag="echoed", frozen=True, kw_only=True):
    data: bytes = b""


class GetVersion(Message, tag="version.get", frozen=True, kw_only=True):
    reply: SenderRef


class VersionInfo(Message, tag="version.info", frozen=True, kw_only=True):
    version: Name
    protocol: NonNegInt
    component: Name = ""
    os: Name = ""
    arch: Name = ""


class RegistryOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How to reach the registry of one pull or push, sent with that request only: the
    receiver uses the credentials for it and never writes them down (a scheduler holds those
    of a run in memory, to hand them to the worker that pulls). ``ca_pem`` is a CA to trust
    besides the receiver's own (and its certs.d); ``insecure`` allows plain http and
    unverified TLS (``--insecure-registry``). Its repr hides the secrets (logs)."""

    username: Name = ""
    password: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    identity_token: Annotated[str, msgspec.Meta(max_length=8192)] = ""
    ca_pem: Text = ""
    insecure: bool = False

    def __repr__(self) -> str:
        secret = "***" if self.password or self.identity_token else ""
        return (f"RegistryOptions(username={self.username!r}, secret={secret!r}, "
                f"ca={bool(self.ca_pem)}, insecure={self.insecure})")

    @property
    def empty(self) -> bool:
        """Nothing beyond an anonymous pull's defaults."""
        return self == RegistryOptions()
