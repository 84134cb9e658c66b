"""MessagePack codec for frame headers, messages and errors, with channel-reference extensions.

Decoding any byte string either returns a valid value or raises ``ProtocolError`` (or its
``LimitExceeded`` branch): never another exception, whatever the input.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from protocol.errors import ErrorInfo, LimitExceeded, ProtocolError
from protocol.frames import Header
from protocol.messages import MESSAGE_TYPES, Message
from protocol.refs import ChannelRef, RefKind

_ID = struct.Struct(">Q")
_MAX_CHANNEL_ID = (1 << 53) - 1

# Export: a reference being sent → the channel id it will have on this session.
ExportRef = Callable[[ChannelRef], int]
# Import: a reference that arrived → the object the message will hold.
ImportRef = Callable[[RefKind, int], ChannelRef]

MessageUnion: Any = typing.Union[MESSAGE_TYPES]  # noqa: UP007 - built from a runtime tuple
# Each message type by its tag, for a codec that decodes each type alone.
_TYPE_BY_TAG: dict[str, type[Message]] = {
    str(t.__struct_config__.tag): t for t in MESSAGE_TYPES}


class _Tagged(msgspec.Struct):
    """A message's tag alone (its other fields skipped, channel references untouched)."""

    type: str

_header_encoder = msgspec.msgpack.Encoder()
_header_decoder: msgspec.msgpack.Decoder[Header] = msgspec.msgpack.Decoder(Header)
_error_decoder = msgspec.msgpack.Decoder(ErrorInfo)
_tag_decoder = msgspec.msgpack.Decoder(_Tagged)


def _protocol_error(what: str, exc: BaseException) -> ProtocolError:
    if isinstance(exc, RecursionError):
        return LimitExceeded(f"{what}: nested too deeply")
    return ProtocolError(f"{what}: {exc}")


def encode_header(header: Header) -> bytes:
    return _header_encoder.encode(header)


def decode_header(data: bytes | memoryview) -> Header:
    try:
        return _header_decoder.decode(data)
    except Exception as exc:  # msgspec also raises UnicodeDecodeError, RecursionError, ...
        raise _protocol_error("bad frame header", exc) from exc


def encode_error(info: ErrorInfo) -> bytes:
    return _header_encoder.encode(info)


def decode_error(data: bytes | memoryview) -> ErrorInfo:
    try:
        return _error_decoder.decode(data)
    except Exception as exc:  # msgspec also raises UnicodeDecodeError, RecursionError, ...
        raise _protocol_error("bad error body", exc) from exc


class MessageCodec:
    """Encodes and decodes ``Message`` values for one session.

    ``export_ref`` and ``import_ref`` tie channel references to the session's channel table;
    both are plain callables so the codec stays free of I/O.
    """

    __slots__ = ("_by_type", "_decoder", "_encoder", "_export_ref", "_import_ref", "_max_size")

    def __init__(self, export_ref: ExportRef, import_ref: ImportRef, max_size: int) -> None:
        self._export_ref = export_ref
        self._import_ref = import_ref
        self._max_size = max_size
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)
        self._decoder: msgspec.msgpack.Decoder[Message] | None = None
        # With ``decode_each_type_alone``: a decoder per message type met, by tag.
        self._by_type: dict[str, msgspec.msgpack.Decoder[Message]] | None = None

    def decode_each_type_alone(self) -> None:
        """Decode each message with a decoder of its own type, found by its tag and built at
        the first message of that type, instead of one decoder of every type: for a one-shot
        client, which meets a handful of types, building that one (~3 ms: msgspec reads each
        of ~120 types) costs more than all it decodes; the tag is read in a pass of its own.
        The same values as the one decoder; what it refuses is refused too, as a
        ProtocolError (in other words, at times: the tag's pass meets a broken tail first)."""
        self._by_type = {}

    def _ready_decoder(self) -> msgspec.msgpack.Decoder[Message]:
        if self._decoder is None:
            self._decoder = msgspec.msgpack.Decoder(
                MessageUnion, ext_hook=self._ext_hook, dec_hook=_check_ref_type
            )
        return self._decoder

    def _type_decoder(self, by_type: dict[str, msgspec.msgpack.Decoder[Message]],
                      data: bytes | memoryview) -> msgspec.msgpack.Decoder[Message]:
        tag = _tag_decoder.decode(data).type  # no map, no tag, no str: msgspec's own words
        decoder = by_type.get(tag)
        if decoder is None:
            kind = _TYPE_BY_TAG.get(tag)
            if kind is None:  # as the one decoder says it
                raise msgspec.ValidationError(f"Invalid value {tag!r} - at `$.type`")
            decoder = by_type[tag] = msgspec.msgpack.Decoder(
                kind, ext_hook=self._ext_hook, dec_hook=_check_ref_type)
        return decoder

    def encode(self, message: Message) -> bytes:
        """Encode ``message``; refs it holds are exported. Raises LimitExceeded when too big."""
        data = self._encoder.encode(message)
        if len(data) > self._max_size:
            raise LimitExceeded(
                f"message {type(message).__name__} is {len(data)} bytes; the limit is "
                f"{self._max_size}"
            )
        return data

    def decode(self, data: bytes | memoryview) -> Message:
        """Decode one message. Refs it holds are imported as they are met."""
        if len(data) > self._max_size:
            raise LimitExceeded(f"message of {len(data)} bytes; the limit is {self._max_size}")
        by_type = self._by_type
        try:
            if by_type is not None:
                return self._type_decoder(by_type, data).decode(data)
            return self._ready_decoder().decode(data)
        except ProtocolError:
            raise  # a channel reference the session refused, with its own words
        except Exception as exc:  # msgspec also raises UnicodeDecodeError, RecursionError, ...
            raise _protocol_error("bad message", exc) from exc

    def _enc_hook(self, obj: Any) -> Any:
        if isinstance(obj, ChannelRef):
            return msgspec.msgpack.Ext(int(obj.ref_kind), _ID.pack(self._export_ref(obj)))
        raise TypeError(f"cannot send a {type(obj).__name__} in a message")

    def _ext_hook(self, code: int, data: memoryview) -> Any:
        if len(data) != _ID.size:
            raise ProtocolError(f"channel reference of {len(data)} bytes, expected {_ID.size}")
        try:
            kind = RefKind(code)
        except ValueError:
            raise ProtocolError(f"unknown extension type {code}") from None
        (channel_id,) = _ID.unpack(data)
        if not 1 <= channel_id <= _MAX_CHANNEL_ID:
            raise ProtocolError(f"channel id {channel_id} out of range")
        return self._import_ref(kind, channel_id)


def _check_ref_type(expected: type, obj: Any) -> Any:
    if isinstance(obj, expected):
        return obj
    if isinstance(obj, ChannelRef):
        raise TypeError(f"expected a {expected.__name__}, got a {type(obj).ref_kind.name} ref")
    raise TypeError(f"expected a {expected.__name__}")
