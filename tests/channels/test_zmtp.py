"""The ZMTP framing of the blocking client, without sockets: bytes in, messages out."""

from __future__ import annotations

import struct

import pytest

from channels._zmtp import GREETING, ZmtpDealer, encode_message
from protocol.errors import ConnectFailed, LimitExceeded, ProtocolError


def command(name: bytes, data: bytes) -> bytes:
    body = bytes((len(name),)) + name + data
    return bytes((0x04, len(body))) + body


def ready(socket_type: bytes) -> bytes:
    prop = b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return command(b"READY", prop)


ROUTER = GREETING + ready(b"ROUTER")


def test_the_dealer_greets_and_says_ready_at_once() -> None:
    dealer = ZmtpDealer(1 << 20)
    out = bytes(dealer.outbox)
    assert out[:10] == b"\xff" + b"\x00" * 8 + b"\x7f" and out[10:12] == b"\x03\x01"
    assert out[12:32] == b"NULL".ljust(20, b"\x00") and len(GREETING) == 64
    assert b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER" in out[64:]


def test_messages_wait_for_the_peers_ready_then_go() -> None:
    dealer = ZmtpDealer(1 << 20)
    dealer.outbox.clear()
    dealer.send([b"hello", b"x" * 300])
    assert dealer.outbox == b""  # held: libzmq drops a message that races its greeting
    assert dealer.receive(ROUTER[:30]) == [] and not dealer.ready  # a partial greeting
    assert dealer.receive(ROUTER[30:]) == [] and dealer.ready
    assert bytes(dealer.outbox) == encode_message([b"hello", b"x" * 300])
    assert dealer.outbox[:7] == b"\x01\x05hello"  # MORE, short
    assert dealer.outbox[7:16] == b"\x02" + struct.pack(">Q", 300)  # last, long


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 10, 11])
def test_frames_split_anywhere_make_the_same_messages(cut: int) -> None:
    dealer = ZmtpDealer(1 << 20)
    stream = ROUTER + encode_message([b"a", b"b" * 1000]) + encode_message([b"c"])
    got = []
    for start in range(0, len(stream), cut):
        got += dealer.receive(stream[start:start + cut])
    assert got == [[b"a", b"b" * 1000], [b"c"]]


def test_a_ping_is_answered_with_its_context() -> None:
    dealer = ZmtpDealer(1 << 20)
    dealer.receive(ROUTER)
    dealer.outbox.clear()
    dealer.receive(command(b"PING", b"\x00\x0a" + b"ctx"))
    assert bytes(dealer.outbox) == command(b"PONG", b"ctx")


@pytest.mark.parametrize(("data", "error", "words"), [
    (b"GET / HTTP/1.1\r\n", ConnectFailed, "does not speak ZMTP"),
    (b"\xff" + b"\x00" * 8 + b"\x7f\x02\x00" + b"\x00" * 52, ConnectFailed, "ZMTP 2.0"),
    (b"\xff" + b"\x00" * 8 + b"\x7f\x03\x01" + b"CURVE".ljust(20, b"\x00") + b"\x00" * 32,
     ConnectFailed, "CURVE"),
    (GREETING + ready(b"PUB"), ConnectFailed, "ZeroMQ PUB socket"),
    (GREETING + command(b"ERROR", b"\x06denied"), ConnectFailed, "refused the connection: denied"),
    (GREETING + b"\x00\x01x", ProtocolError, "before the handshake"),
    (ROUTER + b"\x08\x00", ProtocolError, "reserved frame flags"),
    (ROUTER + b"\x02" + struct.pack(">Q", 1 << 40), LimitExceeded, "a frame of"),
    (ROUTER + (b"\x01\xff" + b"x" * 255) * 5, LimitExceeded, "a message over"),
    (GREETING + command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x09ROU"), ProtocolError,
     "truncated property"),
])
def test_bad_input_is_a_typed_error(data: bytes, error: type[Exception], words: str) -> None:
    dealer = ZmtpDealer(1024)
    with pytest.raises(error, match=words):
        dealer.receive(data)
