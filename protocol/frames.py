"""Session frames: what one peer's session says to the other's.

A frame is one transport message of one or two parts: a MessagePack header (an array whose first
element is the frame kind) and, for some kinds, a body. See PROTOCOL.md for the table.
"""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated, Final

import msgspec

from protocol.limits import MAX_NAME_LEN, SessionLimits

MAGIC: Final = "shoal"
ChannelId = Annotated[int, msgspec.Meta(ge=1, le=(1 << 53) - 1)]
Amount = Annotated[int, msgspec.Meta(ge=1, le=1 << 40)]


class _Header(msgspec.Struct, frozen=True, array_like=True, tag_field="kind"):
    """Frame headers: compact arrays tagged by an integer kind."""


class SessionOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a peer announces about itself in the handshake (a map: new keys may be added)."""

    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)] = ""
    limits: SessionLimits = SessionLimits()
    heartbeat: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0


class Hello(_Header, tag=0, frozen=True):
    """The dialer's first frame. Its layout is frozen across all protocol versions."""

    magic: str
    versions: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=1 << 16)]],
                        msgspec.Meta(max_length=64)]
    options: SessionOptions


class Welcome(_Header, tag=1, frozen=True):
    """The listener's answer: the version both will speak from now on."""

    version: int
    options: SessionOptions


class Data(_Header, tag=2, frozen=True):
    """A message on a channel; body = the encoded message. ``last`` also closes the channel."""

    channel: ChannelId
    last: bool = False


class Chunk(_Header, tag=3, frozen=True):
    """A piece of a byte stream; body = the bytes. ``last`` also ends the stream."""

    channel: ChannelId
    last: bool = False


class Credit(_Header, tag=4, frozen=True):
    """The reader consumed ``amount`` more bytes: the writer may send that much more."""

    channel: ChannelId
    amount: Amount


class Close(_Header, tag=5, frozen=True):
    """The sending end is done: no more data on this channel."""

    channel: ChannelId


class Abort(_Header, tag=6, frozen=True):
    """Either end gives up on a channel; body = ErrorInfo. The other end sees that error."""

    channel: ChannelId


class Ping(_Header, tag=7, frozen=True):
    """Liveness: sent when a peer has been quiet for one heartbeat interval."""


class Fail(_Header, tag=8, frozen=True):
    """The session ends on an error; body = ErrorInfo. Sent before dropping a peer."""


class Bye(_Header, tag=9, frozen=True):
    """The session ends cleanly; open channels fail with PeerLost at the other end."""


Header = Hello | Welcome | Data | Chunk | Credit | Close | Abort | Ping | Fail | Bye

# Kinds whose header is followed by a body part.
HAS_BODY: Final = frozenset({Data, Chunk, Abort, Fail})
