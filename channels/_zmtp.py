"""ZMTP 3.1 for a dialing DEALER, sans I/O: bytes in, messages out.

The one-shot client (``channels._blocking``) speaks ZeroMQ's wire protocol (RFC 23/ZMTP,
37/ZMTP 3.1) itself over a plain socket, to the listeners' real ZeroMQ ROUTER sockets: importing
pyzmq and starting its I/O thread costs a ``shoal ps`` more than the whole exchange. Only what a
DEALER needs is here: the greeting, the READY handshake, multipart messages, PING/PONG; with
the NULL mechanism (ipc sockets, whose file permissions admit a peer) or CURVE
(``channels._zmtp_curve``, imported only when asked for).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from protocol.errors import ConnectFailed, LimitExceeded, ProtocolError

if TYPE_CHECKING:
    from channels._curve import CurveClient
    from channels._zmtp_curve import CurveClientHandshake

_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
_VERSION = b"\x03\x01"
GREETING_SIZE = 64


def greeting(mechanism: bytes) -> bytes:
    return _SIGNATURE + _VERSION + mechanism.ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


GREETING = greeting(b"NULL")

_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04
_LONG_SIZE = struct.Struct(">Q")
_VALUE_SIZE = struct.Struct(">I")


def _frame(flags: int, body: bytes) -> bytes:
    if len(body) > 255:
        return bytes((flags | _LONG,)) + _LONG_SIZE.pack(len(body)) + body
    return bytes((flags, len(body))) + body


def _command(name: bytes, data: bytes) -> bytes:
    return _frame(_COMMAND, bytes((len(name),)) + name + data)


def _properties(**values: bytes) -> bytes:
    out = b""
    for name, value in values.items():
        key = name.replace("_", "-").encode()
        out += bytes((len(key),)) + key + _VALUE_SIZE.pack(len(value)) + value
    return out


def _parse_properties(data: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    at = 0
    while at < len(data):
        size = data[at]
        name = data[at + 1:at + 1 + size].decode("ascii", "replace").lower()
        at += 1 + size
        if at + 4 > len(data):
            raise ProtocolError("ZMTP: a truncated property in READY")
        (length,) = _VALUE_SIZE.unpack_from(data, at)
        at += 4
        if at + length > len(data):
            raise ProtocolError("ZMTP: a truncated property in READY")
        found[name] = data[at:at + length]
        at += length
    return found


def encode_message(parts: list[bytes]) -> bytes:
    """One multipart message as ZMTP frames."""
    last = len(parts) - 1
    return b"".join(_frame(_MORE if i < last else 0, bytes(part))
                    for i, part in enumerate(parts))


class ZmtpDealer:
    """The protocol state of one connection; ``outbox`` holds what must be written."""

    def __init__(self, max_message: int, curve: CurveClient | None = None) -> None:
        self.max_message = max_message
        self._curve: CurveClientHandshake | None = None
        if curve is None:
            self.mechanism = b"NULL"
            self.outbox = bytearray(GREETING + _command(b"READY",
                                                        _properties(Socket_Type=b"DEALER")))
        else:
            from channels._zmtp_curve import CurveClientHandshake

            self.mechanism = b"CURVE"
            self._curve = CurveClientHandshake(curve)
            self.outbox = bytearray(greeting(b"CURVE") + _command(*self._curve.hello()))
        self.ready = False  # the peer's greeting and READY have arrived
        self._buffer = bytearray()
        self._greeted = False
        self._parts: list[bytes] = []
        self._size = 0
        # Messages wait for the peer's READY: libzmq drops a connection whose first message
        # arrives with the greeting, before it has answered it.
        self._held = bytearray()
        self._held_parts: list[list[bytes]] = []  # CURVE: sealed only once the keys are known

    def receive(self, data: bytes) -> list[list[bytes]]:
        """Handle bytes from the peer; the complete messages they finished."""
        self._buffer += data
        messages: list[list[bytes]] = []
        if not self._greeted:
            if len(self._buffer) < GREETING_SIZE:
                self._check_signature()
                return messages
            self._check_greeting(bytes(self._buffer[:GREETING_SIZE]))
            del self._buffer[:GREETING_SIZE]
            self._greeted = True
        while (frame := self._next_frame()) is not None:
            flags, body = frame
            if self._curve is not None and self.ready:
                more, body = self._open(body)
                if more is None:
                    continue
                flags = _MORE if more else 0
            elif flags & _COMMAND:
                self._on_command(body)
                continue
            if not self.ready:
                raise ProtocolError("ZMTP: a message before the handshake")
            self._size += len(body)
            if self._size > self.max_message:
                raise LimitExceeded(f"ZMTP: a message over {self.max_message} bytes")
            self._parts.append(body)
            if not flags & _MORE:
                messages.append(self._parts)
                self._parts, self._size = [], 0
        return messages

    def _check_signature(self) -> None:
        head = bytes(self._buffer[:10])
        if head[:1] not in (b"", b"\xff") or (len(head) == 10 and not head[9] & 1):
            raise ConnectFailed("the peer does not speak ZMTP (not a shoal listener)")

    def _check_greeting(self, greeting: bytes) -> None:
        if greeting[0] != 0xFF or not greeting[9] & 1:
            raise ConnectFailed("the peer does not speak ZMTP (not a shoal listener)")
        if greeting[10] < 3:
            raise ConnectFailed(f"the peer speaks ZMTP {greeting[10]}.{greeting[11]}; 3.0 or "
                                "newer is needed")
        mechanism = greeting[12:32].rstrip(b"\x00")
        if mechanism != self.mechanism:
            theirs, ours = (m.decode("ascii", "replace") for m in (mechanism, self.mechanism))
            raise ConnectFailed(f"the peer wants the {theirs} security mechanism; this client "
                                f"was given {ours}" + (" (no key for this address: enroll with "
                                                       "a client token first)"
                                                       if ours == "NULL" else ""))

    def _next_frame(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        flags = buffer[0]
        if flags & ~(_MORE | _LONG | _COMMAND):
            raise ProtocolError(f"ZMTP: reserved frame flags {flags:#04x}")
        if flags & _LONG:
            if len(buffer) < 9:
                return None
            (size,) = _LONG_SIZE.unpack_from(buffer, 1)
            start = 9
        else:
            size, start = buffer[1], 2
        if size > self.max_message:
            raise LimitExceeded(f"ZMTP: a frame of {size} bytes (limit {self.max_message})")
        if len(buffer) < start + size:
            return None
        body = bytes(buffer[start:start + size])
        del buffer[:start + size]
        return flags, body

    def _on_command(self, body: bytes) -> None:
        if not body or len(body) < 1 + body[0]:
            raise ProtocolError("ZMTP: a malformed command")
        name, data = body[1:1 + body[0]], body[1 + body[0]:]
        if name == b"WELCOME" and self._curve is not None and not self.ready:
            self.outbox += _command(*self._curve.welcome(data))
        elif name == b"READY":
            if self._curve is not None:
                data = self._curve.ready_metadata(data)
            socket_type = _parse_properties(data).get("socket-type", b"")
            if socket_type != b"ROUTER":
                raise ConnectFailed(f"the peer is a ZeroMQ {socket_type.decode('ascii', 'replace')}"
                                    " socket, not a shoal listener (ROUTER)")
            self.ready = True
            self.outbox += self._held
            self._held.clear()
            held, self._held_parts = self._held_parts, []
            for parts in held:
                self.send(parts)
        elif name == b"ERROR":
            reason = data[1:1 + data[0]].decode("utf-8", "replace") if data else ""
            if self._curve is not None and not self.ready:
                raise ConnectFailed("the listener refused this client's key (not enrolled, or "
                                    "revoked)")
            raise ConnectFailed(f"the peer refused the connection: {reason or 'no reason'}")
        elif name == b"PING":
            self.outbox += _command(b"PONG", data[2:18])  # the context, after the TTL
        # PONG and commands of newer versions need nothing from a DEALER

    def _open(self, body: bytes) -> tuple[bool | None, bytes]:
        """A CURVE MESSAGE → (more, part); (None, b"") for a command inside a box, which a
        DEALER never needs (zmq's heartbeats are off on shoal's listeners)."""
        assert self._curve is not None
        from channels._zmtp_curve import COMMAND_FLAG, MORE_FLAG

        flags, part = self._curve.open(body)
        if flags & COMMAND_FLAG:
            return None, b""
        return bool(flags & MORE_FLAG), part

    def send(self, parts: list[bytes]) -> None:
        if self._curve is None:
            (self.outbox if self.ready else self._held).extend(encode_message(parts))
            return
        if not self.ready:
            self._held_parts.append([bytes(part) for part in parts])
            return
        last = len(parts) - 1
        seal = self._curve.seal
        for i, part in enumerate(parts):
            self.outbox.extend(_frame(0, seal(bytes(part), i < last)))
