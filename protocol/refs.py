"""Channel references: the ends of channels and byte streams that a message may carry.

These classes are the types message fields are declared with. On the wire a reference is a
MessagePack extension (see ``codec``) holding a channel id; in a process it is a live object (a
subclass from ``channels``) or, in pure code and tests, a plain ``WireRef``. What a reference
means is seen from the receiver of the message:

- ``SenderRef``: you may send messages on this channel (the author holds the receiving end);
- ``ReceiverRef``: you will receive messages on this channel;
- ``ByteWriterRef``: you may write a byte stream here;
- ``ByteReaderRef``: you will read a byte stream from here.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class RefKind(enum.IntEnum):
    """Extension type codes; stable on the wire."""

    SENDER = 1
    RECEIVER = 2
    BYTE_WRITER = 3
    BYTE_READER = 4

    @property
    def is_bytes(self) -> bool:
        return self in (RefKind.BYTE_WRITER, RefKind.BYTE_READER)

    @property
    def holder_sends(self) -> bool:
        """Whether the process that receives the reference is the one that sends data."""
        return self in (RefKind.SENDER, RefKind.BYTE_WRITER)


class ChannelRef:
    """Base of everything that may stand in a message field as a channel end."""

    __slots__ = ()
    ref_kind: ClassVar[RefKind]


class SenderRef(ChannelRef):
    __slots__ = ()
    ref_kind = RefKind.SENDER


class ReceiverRef(ChannelRef):
    __slots__ = ()
    ref_kind = RefKind.RECEIVER


class ByteWriterRef(ChannelRef):
    __slots__ = ()
    ref_kind = RefKind.BYTE_WRITER


class ByteReaderRef(ChannelRef):
    __slots__ = ()
    ref_kind = RefKind.BYTE_READER


_PLAIN_BASES: dict[RefKind, type[ChannelRef]] = {
    RefKind.SENDER: SenderRef,
    RefKind.RECEIVER: ReceiverRef,
    RefKind.BYTE_WRITER: ByteWriterRef,
    RefKind.BYTE_READER: ByteReaderRef,
}


class _WireSender(SenderRef):
    __slots__ = ("channel_id",)

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id


class _WireReceiver(ReceiverRef):
    __slots__ = ("channel_id",)

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id


class _WireByteWriter(ByteWriterRef):
    __slots__ = ("channel_id",)

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id


class _WireByteReader(ByteReaderRef):
    __slots__ = ("channel_id",)

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id


_WIRE_CLASSES: dict[RefKind, type[ChannelRef]] = {
    RefKind.SENDER: _WireSender,
    RefKind.RECEIVER: _WireReceiver,
    RefKind.BYTE_WRITER: _WireByteWriter,
    RefKind.BYTE_READER: _WireByteReader,
}


def wire_ref(kind: RefKind, channel_id: int) -> ChannelRef:
    """A plain reference holding only its channel id: what pure code and tests work with."""
    return _WIRE_CLASSES[kind](channel_id)  # type: ignore[call-arg]


def wire_ref_id(ref: ChannelRef) -> int | None:
    """The channel id of a plain reference, or None for a live one."""
    channel_id = getattr(ref, "channel_id", None)
    return channel_id if type(ref) in _WIRE_CLASSES.values() else None


def ref_base(kind: RefKind) -> type[ChannelRef]:
    return _PLAIN_BASES[kind]
