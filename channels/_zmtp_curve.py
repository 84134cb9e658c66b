"""The client side of ZeroMQ's CURVE mechanism (RFC 26/CurveZMQ, 25/ZMTP-CURVE), sans I/O.

What ``channels._zmtp`` needs to speak CURVE to a listener's real ZeroMQ ROUTER: the HELLO,
WELCOME, INITIATE, READY handshake, and each message part boxed as a MESSAGE command after it.
The boxes are libsodium's crypto_box (PyNaCl); a transient keypair per connection gives forward
secrecy, and our long-term key is proven to the listener by the vouch inside INITIATE.

Every box the listener sends is opened (authenticated) before anything in it is used, and its
nonces must increase; a failure is a ProtocolError that ends the connection.
"""

from __future__ import annotations

import os
import struct

from nacl.bindings import (
    crypto_box,
    crypto_box_afternm,
    crypto_box_beforenm,
    crypto_box_keypair,
    crypto_box_open,
    crypto_box_open_afternm,
)
from nacl.exceptions import CryptoError

from channels._curve import CurveClient
from protocol.errors import ConnectFailed, ProtocolError

_NONCE = struct.Struct(">Q")
_COOKIE_SIZE = 96
MORE_FLAG, COMMAND_FLAG = 0x01, 0x02  # the flags byte inside a MESSAGE box


def _short(prefix: bytes, counter: int) -> bytes:
    return prefix + _NONCE.pack(counter)


class CurveClientHandshake:
    """One connection's CURVE state: commands to send, and boxes to open."""

    def __init__(self, curve: CurveClient) -> None:
        self._server = curve.server_key
        self._keys = curve.keypair
        self._transient_public, self._transient_secret = crypto_box_keypair()
        self._nonce = 1  # our short nonce: increases with every box we send
        self._peer_nonce = 0  # the listener's last short nonce
        self._shared = b""  # the precomputed key of the transient pair, after WELCOME
        self.ready = False

    def _next_nonce(self) -> int:
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def hello(self) -> tuple[bytes, bytes]:
        """The HELLO command (name, data): our transient key and a box only the listener's
        long-term key opens."""
        nonce = self._next_nonce()
        box = crypto_box(bytes(64), _short(b"CurveZMQHELLO---", nonce), self._server,
                         self._transient_secret)
        return b"HELLO", b"\x01\x00" + bytes(72) + self._transient_public + \
            _NONCE.pack(nonce) + box

    def welcome(self, data: bytes) -> tuple[bytes, bytes]:
        """Open WELCOME (the listener's transient key and its cookie); the INITIATE command."""
        if len(data) != 16 + 144:
            raise ProtocolError("CURVE: a malformed WELCOME")
        try:
            plain = crypto_box_open(data[16:], b"WELCOME-" + data[:16], self._server,
                                    self._transient_secret)
        except CryptoError:
            raise ConnectFailed("CURVE: the listener's WELCOME does not open with the key "
                                "given for it (wrong server key?)") from None
        server_transient, cookie = plain[:32], plain[32:32 + _COOKIE_SIZE]
        self._shared = crypto_box_beforenm(server_transient, self._transient_secret)
        vouch_nonce = os.urandom(16)
        vouch = vouch_nonce + crypto_box(self._transient_public + self._server,
                                         b"VOUCH---" + vouch_nonce, server_transient,
                                         self._keys.secret)
        metadata = _property(b"Socket-Type", b"DEALER")
        nonce = self._next_nonce()
        box = crypto_box_afternm(self._keys.public + vouch + metadata,
                                 _short(b"CurveZMQINITIATE", nonce), self._shared)
        return b"INITIATE", cookie + _NONCE.pack(nonce) + box

    def ready_metadata(self, data: bytes) -> bytes:
        """Open READY; its metadata (the listener's properties)."""
        if len(data) < 8 + 16:
            raise ProtocolError("CURVE: a malformed READY")
        nonce = self._check_nonce(data[:8])
        try:
            plain = crypto_box_open_afternm(data[8:], _short(b"CurveZMQREADY---", nonce),
                                            self._shared)
        except CryptoError:
            raise ProtocolError("CURVE: a READY box that does not open") from None
        self.ready = True
        return bytes(plain)

    def seal(self, part: bytes, more: bool) -> bytes:
        """One message part as the body of a MESSAGE command."""
        nonce = self._next_nonce()
        box = crypto_box_afternm(bytes((MORE_FLAG if more else 0,)) + part,
                                 _short(b"CurveZMQMESSAGEC", nonce), self._shared)
        return b"\x07MESSAGE" + _NONCE.pack(nonce) + box

    def open(self, body: bytes) -> tuple[int, bytes]:
        """A MESSAGE command's body → (flags, part)."""
        if len(body) < 8 + 8 + 17 or body[:8] != b"\x07MESSAGE":
            raise ProtocolError("CURVE: a frame that is not a MESSAGE after the handshake")
        nonce = self._check_nonce(body[8:16])
        try:
            plain = crypto_box_open_afternm(body[16:], _short(b"CurveZMQMESSAGES", nonce),
                                            self._shared)
        except CryptoError:
            raise ProtocolError("CURVE: a MESSAGE box that does not open") from None
        return plain[0], bytes(plain[1:])

    def _check_nonce(self, raw: bytes) -> int:
        nonce: int = _NONCE.unpack(raw)[0]
        if nonce <= self._peer_nonce:
            raise ProtocolError("CURVE: a replayed or reordered nonce")
        self._peer_nonce = nonce
        return nonce


def _property(name: bytes, value: bytes) -> bytes:
    return bytes((len(name),)) + name + struct.pack(">I", len(value)) + value

