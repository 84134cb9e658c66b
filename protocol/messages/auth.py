"""Keys and tokens: who may talk to the cluster."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated, Literal

import msgspec

from protocol.limits import (
    MAX_LIST_ITEMS,
)
from protocol.messages.base import Message
from protocol.messages.cluster import ManagerAddresses
from protocol.refs import SenderRef
from protocol.specs import (
    KeyText,
    Name,
    Text,
    Timestamp,
)

# --- keys and tokens: who may talk to the cluster ---------------------------------------------
EnrolledRole = Literal["worker", "client"]


class Enroll(Message, tag="auth.enroll", frozen=True, kw_only=True):
    """A join token's holder (authenticated by the token's key) enrolls its own ``key`` for
    the token's role: a worker under its node id (``name``), a client under a name for
    people. Answered with ``Enrolled``."""

    key: KeyText
    name: Name
    reply: SenderRef


class Enrolled(Message, tag="auth.enrolled", frozen=True, kw_only=True):
    """The key is admitted: dial the cluster's managers (``managers``) with ``cluster_key``."""

    role: EnrolledRole
    name: Name
    cluster_key: KeyText
    managers: ManagerAddresses = []


class GetJoinToken(Message, tag="auth.token.get", frozen=True, kw_only=True):
    """The join token for ``role``; ``rotate``: replace it first (the old one stops working;
    keys it enrolled stay)."""

    role: Name
    rotate: bool = False
    reply: SenderRef


class JoinToken(Message, tag="auth.token", frozen=True, kw_only=True):
    role: EnrolledRole
    token: Text


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    key: KeyText
    role: Name
    name: Name
    created: Timestamp = 0.0


class ListKeys(Message, tag="auth.keys.list", frozen=True, kw_only=True):
    reply: SenderRef


class KeyList(Message, tag="auth.keys.listed", frozen=True, kw_only=True):
    keys: Annotated[list[KeyInfo], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []


class RevokeKey(Message, tag="auth.key.revoke", frozen=True, kw_only=True):
    """Stop admitting ``key`` (a prefix of its text that names one key will do): its sessions
    end at once. Answered with ``Ok``."""

    key: Name
    reply: SenderRef
