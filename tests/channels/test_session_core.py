"""The sans-I/O session core, driven with frames by hand: no sockets, no loop, no sleeps."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels._session import (
    ROOT_CHANNEL,
    ChannelEnd,
    CreditAvailable,
    Delivered,
    Ended,
    Established,
    Event,
    SessionCore,
    SessionEnded,
)
from channels._states import CHANNEL_TABLE, SESSION_TABLE, Input, Role, SessionInput, SessionState
from protocol.codec import decode_error, decode_header, encode_error, encode_header
from protocol.errors import (
    ChannelClosed,
    LimitExceeded,
    NotFound,
    PeerLost,
    ProtocolError,
    VersionMismatch,
)
from protocol.frames import Abort, Chunk, Close, Credit, Data, Fail, Hello, Ping, SessionOptions
from protocol.limits import MAX_GRANT_BATCH, STREAM_CHUNK, PeerBounds, SessionLimits
from protocol.messages import Echo, Echoed, Message
from protocol.refs import ChannelRef, RefKind, wire_ref, wire_ref_id

WINDOW = 4096


def make_core(dialer: bool, *, window: int = WINDOW, versions: tuple[int, ...] = (1,),
              timeout: float = 5.0, heartbeat: float = 1.0,
              bounds: PeerBounds | None = None) -> SessionCore:
    def make_ref(kind: RefKind, end: ChannelEnd) -> ChannelRef:
        end.sink = f"sink-{end.id}"
        return wire_ref(kind, end.id)

    core: SessionCore

    def export(ref: ChannelRef) -> int:
        existing = wire_ref_id(ref)
        if existing is not None:
            return existing
        return core.open_channel(RefKind.SENDER, "local").id

    options = SessionOptions(name="d" if dialer else "l", heartbeat=heartbeat,
                             limits=SessionLimits(window=window, max_channels=64))
    core = SessionCore(dialer=dialer, options=options, make_ref=make_ref, export_ref=export,
                       timeout=timeout, now=0.0, versions=versions,
                       bounds=bounds or PeerBounds())
    return core


def deliver(src: SessionCore, dst: SessionCore) -> list[Event]:
    events: list[Event] = []
    frames = list(src.outbox)
    src.outbox.clear()
    for frame in frames:
        events.extend(dst.receive(frame))
    return events


def pair(dialer: SessionCore | None = None,
         listener: SessionCore | None = None) -> tuple[SessionCore, SessionCore]:
    dialer = dialer or make_core(True)
    listener = listener or make_core(False)
    assert isinstance(deliver(dialer, listener)[0], Established)
    assert isinstance(deliver(listener, dialer)[0], Established)
    return dialer, listener


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def sent(core: SessionCore) -> list[object]:
    return [decode_header(frame[0]) for frame in core.outbox]


def test_the_tables_cover_every_case() -> None:
    assert set(CHANNEL_TABLE) == {(r, i) for r in Role for i in Input}
    live = [s for s in SessionState if s is not SessionState.ENDED]
    assert set(SESSION_TABLE) == {(s, i) for s in live for i in SessionInput}


def test_handshake_opens_the_root_channel_both_sides() -> None:
    dialer, listener = pair()
    assert dialer.state is listener.state is SessionState.OPEN
    assert dialer.ends[ROOT_CHANNEL].role is Role.SEND
    assert listener.ends[ROOT_CHANNEL].role is Role.RECV
    assert dialer.peer is not None and dialer.peer.name == "l"


def test_request_reply_carries_a_channel_and_closes_it_with_the_last_message() -> None:
    dialer, listener = pair()
    reply_end = dialer.open_channel(RefKind.SENDER, "reply-inbox")
    request = Echo(data=b"hi", reply=wire_ref(RefKind.SENDER, reply_end.id))
    dialer.send_message(dialer.ends[ROOT_CHANNEL], request)
    (delivered,) = deliver(dialer, listener)
    assert isinstance(delivered, Delivered)
    request = delivered.item
    assert isinstance(request, Echo)
    reply_id = wire_ref_id(request.reply)
    assert reply_id == reply_end.id
    server_end = listener.ends[reply_id]
    assert server_end.role is Role.SEND and server_end.sink == f"sink-{reply_id}"
    listener.send_message(server_end, Echoed(data=b"hi"), last=True)
    assert reply_id not in listener.ends
    events = deliver(listener, dialer)
    assert kinds(events) == ["Delivered", "Ended"]
    assert events[0].item == Echoed(data=b"hi")  # type: ignore[union-attr]
    assert reply_id not in dialer.ends


def test_a_peer_cannot_claim_our_ids_or_reuse_its_own() -> None:
    _dialer, listener = pair()
    mine = listener._next_id  # an id of the listener's parity

    def echo(channel_id: int) -> list[bytes]:
        return [encode_header(Data(channel=ROOT_CHANNEL)), msgspec.msgpack.encode(
            {"type": "echo", "reply": msgspec.msgpack.Ext(1, channel_id.to_bytes(8, "big"))})]

    assert listener.receive(echo(mine)) == []  # refused, and our own channel left alone
    assert mine not in listener.ends
    (first,) = listener.receive(echo(3))
    assert isinstance(first, Delivered)
    assert listener.receive(echo(3)) == []  # a reused id is refused
    assert listener.ends[3].sink == "sink-3"  # the first channel 3 is untouched
    assert listener.state is SessionState.OPEN


def _ext(channel_id: int, kind: int = 1) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(kind, channel_id.to_bytes(8, "big"))


def test_a_refused_request_fails_its_reply_channel_and_the_root_stays_open() -> None:
    _dialer, listener = pair()
    # The reply ref comes after the bad field, so the typed decode never reaches it.
    bad = msgspec.msgpack.encode({"type": "echo", "data": 5, "reply": _ext(3)})
    assert listener.receive([encode_header(Data(channel=ROOT_CHANNEL)), bad]) == []
    (abort,) = sent(listener)
    assert abort == Abort(channel=3)
    error = decode_error(listener.outbox[0][1])
    assert error.code == "protocol" and "Expected `bytes`, got `int`" in error.message
    assert ROOT_CHANNEL in listener.ends and 3 not in listener.ends
    good = msgspec.msgpack.encode({"type": "echo", "reply": _ext(5)})
    (delivered,) = listener.receive([encode_header(Data(channel=ROOT_CHANNEL)), good])
    assert isinstance(delivered, Delivered)


def test_refs_adopted_before_the_failure_are_rolled_back_and_refused() -> None:
    _dialer, listener = pair()
    bad = msgspec.msgpack.encode({"type": "exec", "reply": _ext(7), "stdin": _ext(9, 4)})
    listener.receive([encode_header(Data(channel=ROOT_CHANNEL)), bad])
    assert sorted(h.channel for h in sent(listener)) == [7, 9]  # type: ignore[attr-defined]
    assert 7 not in listener.ends and 9 not in listener.ends


def test_a_bad_message_on_a_plain_channel_breaks_that_channel_at_both_ends() -> None:
    dialer, listener = pair()
    reply = dialer.open_channel(RefKind.SENDER, "inbox")
    dialer.send_message(dialer.ends[ROOT_CHANNEL],
                        Echo(reply=wire_ref(RefKind.SENDER, reply.id)))
    deliver(dialer, listener)
    bogus = msgspec.msgpack.encode({"type": "echoed", "data": "not bytes"})
    (ended,) = dialer.receive([encode_header(Data(channel=reply.id)), bogus])
    assert isinstance(ended, Ended) and isinstance(ended.error, ProtocolError)
    assert sent(dialer)[-1] == Abort(channel=reply.id)
    (ended,) = deliver(dialer, listener)
    assert isinstance(ended, Ended) and isinstance(ended.error, ProtocolError)


def test_credit_limits_the_sender_and_grants_come_back_in_batches() -> None:
    dialer, listener = pair()
    end = listener.open_channel(RefKind.BYTE_READER, None)  # listener writes bytes
    dialer_end = ChannelEnd(end.id, Role.RECV, True, WINDOW)
    dialer.ends[end.id] = dialer_end  # as if the ref had arrived
    dialer._peer_high = end.id
    listener.send_chunk(end, b"x" * WINDOW)
    with pytest.raises(Exception, match="no credit"):
        listener.send_chunk(end, b"y")
    (delivered,) = deliver(listener, dialer)
    assert isinstance(delivered, Delivered) and delivered.size == WINDOW
    dialer.consumed(dialer_end, WINDOW // 4)
    assert not dialer.outbox  # not yet half a window
    dialer.consumed(dialer_end, WINDOW // 4)
    (credit,) = sent(dialer)
    assert credit == Credit(channel=end.id, amount=WINDOW // 2)
    events = deliver(dialer, listener)
    assert events == [CreditAvailable(end)]
    assert end.credit == WINDOW // 2


def test_overrunning_the_window_ends_the_session() -> None:
    dialer, listener = pair()
    end = listener.open_channel(RefKind.BYTE_READER, None)
    dialer.ends[end.id] = ChannelEnd(end.id, Role.RECV, True, WINDOW)
    dialer._peer_high = end.id
    listener.send_chunk(end, b"x" * WINDOW)
    deliver(listener, dialer)
    events = dialer.receive([encode_header(Chunk(channel=end.id)), b"more"])
    assert isinstance(events[0], SessionEnded)
    assert "overran the window" in str(events[0].error)
    assert isinstance(sent(dialer)[-1], Fail)


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ([encode_header(Credit(channel=ROOT_CHANNEL, amount=5))], "credit for channel 1"),
        ([encode_header(Close(channel=ROOT_CHANNEL))], None),
        ([encode_header(Chunk(channel=ROOT_CHANNEL)), b"x"], "Chunk on channel 1"),
        ([encode_header(Hello(magic="shoal", versions=[1], options=SessionOptions()))],
         "unexpected Hello"),
        ([b"\xc1garbage"], "bad frame header"),
        ([encode_header(Data(channel=ROOT_CHANNEL))], "has 2 parts, got 1"),
        ([encode_header(Ping()), b"extra"], "has 1 parts, got 2"),
    ],
)
def test_frames_illegal_in_state_are_typed_errors(frame: list[bytes], fragment: str | None) -> None:
    _dialer, listener = pair()
    events = listener.receive(frame)
    if fragment is None:  # a legal close of the root: the listener's end just ends
        assert kinds(events) == ["Ended"]
        return
    (ended,) = events
    assert isinstance(ended, SessionEnded) and isinstance(ended.error, ProtocolError)
    assert fragment in str(ended.error)
    fail = listener.outbox[-1]
    assert isinstance(decode_header(fail[0]), Fail)
    assert fragment in decode_error(fail[1]).message


def test_frames_for_unknown_channels_are_answered_once_and_stale_ones_dropped() -> None:
    _dialer, listener = pair()
    assert listener.receive([encode_header(Data(channel=999)), b"\x80"]) == []
    (abort,) = sent(listener)
    assert abort == Abort(channel=999)
    listener.outbox.clear()
    assert listener.receive([encode_header(Credit(channel=1001, amount=1))]) == []
    assert not listener.outbox  # control frames are never answered
    listener.receive([encode_header(Abort(channel=1003)),
                      encode_error(ChannelClosed("x").to_info())])
    assert not listener.outbox


def test_an_abort_reaches_the_other_end_as_the_same_error() -> None:
    dialer, listener = pair()
    reply = dialer.open_channel(RefKind.SENDER, "inbox")
    dialer.send_message(dialer.ends[ROOT_CHANNEL],
                        Echo(reply=wire_ref(RefKind.SENDER, reply.id)))
    deliver(dialer, listener)
    listener.abort_channel(listener.ends[reply.id], NotFound("no such container"))
    (ended,) = deliver(listener, dialer)
    assert isinstance(ended, Ended) and isinstance(ended.error, NotFound)
    assert ended.end is reply


def test_version_mismatch_is_refused_with_both_lists() -> None:
    dialer = make_core(True, versions=(7,))
    listener = make_core(False, versions=(1,))
    (ended,) = deliver(dialer, listener)
    assert isinstance(ended, SessionEnded) and isinstance(ended.error, VersionMismatch)
    (ended,) = deliver(listener, dialer)
    assert isinstance(ended, SessionEnded) and isinstance(ended.error, VersionMismatch)
    assert "speaks 7" in str(ended.error) and "speaks 1" in str(ended.error)


def test_a_foreign_hello_is_refused() -> None:
    listener = make_core(False)
    frame = [encode_header(Hello(magic="libchan", versions=[1], options=SessionOptions()))]
    (ended,) = listener.receive(frame)
    assert isinstance(ended, SessionEnded) and "not a shoal peer" in str(ended.error)


def test_liveness_pings_when_due_and_declares_a_silent_peer_lost() -> None:
    _dialer, listener = pair()
    assert listener.tick(0.5) == []
    assert not listener.outbox
    assert listener.tick(1.0) == []
    assert sent(listener) == [Ping()]
    listener.touch(4.0)
    assert listener.tick(8.9) == []
    (ended,) = listener.tick(9.1)
    assert isinstance(ended, SessionEnded) and isinstance(ended.error, PeerLost)
    assert "silent for more than 5 s" in str(ended.error)


def test_ending_fails_every_open_end_and_says_bye() -> None:
    dialer, listener = pair()
    a = dialer.open_channel(RefKind.SENDER, "x")
    b = dialer.open_channel(RefKind.RECEIVER, "y")
    (ended,) = dialer.end()
    assert isinstance(ended, SessionEnded)
    assert {e.id for e in ended.ends} == {ROOT_CHANNEL, a.id, b.id}
    (ended,) = deliver(dialer, listener)
    assert isinstance(ended, SessionEnded) and isinstance(ended.error, PeerLost)


def test_channel_limit_is_enforced_for_both_sides() -> None:
    dialer, _listener = pair()
    for _ in range(63):
        dialer.open_channel(RefKind.SENDER, None)
    with pytest.raises(LimitExceeded):
        dialer.open_channel(RefKind.SENDER, None)


def test_a_message_too_big_for_the_peer_is_refused_before_sending() -> None:
    dialer = make_core(True)
    listener = SessionCore(
        dialer=False, options=SessionOptions(limits=SessionLimits(max_frame=1024)),
        make_ref=lambda k, e: wire_ref(k, e.id), export_ref=lambda r: 0, timeout=5, now=0)
    deliver(dialer, listener)
    deliver(listener, dialer)
    with pytest.raises(LimitExceeded, match="peer's limit of 1024"):
        dialer.send_message(dialer.ends[ROOT_CHANNEL], Echoed(data=b"x" * 2000))
    assert not dialer.outbox


MESSAGES: list[Message] = [Echoed(data=b"x"), Echo(reply=wire_ref(RefKind.SENDER, 3))]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.lists(st.binary(max_size=64), min_size=1, max_size=3), max_size=8))
def test_random_frames_never_escape_as_untyped_errors(frames: list[list[bytes]]) -> None:
    _dialer, listener = pair()
    for frame in frames:
        for event in listener.receive(frame):
            if isinstance(event, SessionEnded | Ended) and event.error is not None:
                assert isinstance(event.error, ProtocolError | PeerLost | ChannelClosed)


# --- what a peer may cost us, whatever it announces ---------------------------------------------
def byte_channel(listener: SessionCore, dialer: SessionCore) -> tuple[ChannelEnd, ChannelEnd]:
    """A byte stream the listener writes and the dialer reads (as if its ref had arrived)."""
    end = listener.open_channel(RefKind.BYTE_READER, None)
    reader = ChannelEnd(end.id, Role.RECV, True, dialer.options.limits.window)
    dialer.ends[end.id] = reader
    dialer._peer_high = end.id
    return end, reader


def write_while_allowed(core: SessionCore, end: ChannelEnd) -> int:
    """Send chunks on ``end`` until the core says wait; the bytes sent."""
    sent_bytes = 0
    for _ in range(10_000):
        if not core.can_send(end):
            return sent_bytes
        core.send_chunk(end, b"x" * STREAM_CHUNK)
        sent_bytes += STREAM_CHUNK
    raise AssertionError("the writer was never held back")


GIB = 1 << 30
MIB = 1 << 20


@pytest.mark.parametrize(("announced", "max_window", "used"), [
    (GIB, 4 * MIB, 4 * MIB),  # a greedy peer gets our maximum
    (GIB, MIB, MIB),  # tunable per endpoint
    (WINDOW, 4 * MIB, WINDOW),  # a modest peer gets what it asked for
])
def test_the_window_used_when_sending_is_the_peers_clamped(announced: int, max_window: int,
                                                           used: int) -> None:
    dialer, listener = pair(make_core(True, window=announced),
                            make_core(False, bounds=PeerBounds(max_window=max_window)))
    end, _reader = byte_channel(listener, dialer)
    assert end.credit == used
    assert dialer.ends[ROOT_CHANNEL].credit == WINDOW  # what the listener announced


def test_a_receiver_with_a_huge_window_still_grants_a_clamped_sender() -> None:
    dialer, listener = pair(make_core(True, window=GIB),
                            make_core(False, bounds=PeerBounds(max_window=MAX_GRANT_BATCH)))
    end, reader = byte_channel(listener, dialer)
    assert write_while_allowed(listener, end) == MAX_GRANT_BATCH
    delivered = deliver(listener, dialer)
    for event in delivered:
        assert isinstance(event, Delivered)
        dialer.consumed(reader, event.size)
    (credit,) = sent(dialer)  # after MAX_GRANT_BATCH, not half a GiB
    assert credit == Credit(channel=end.id, amount=MAX_GRANT_BATCH)
    assert deliver(dialer, listener) == [CreditAvailable(end)]
    assert listener.can_send(end) and listener.in_flight == 0


def test_a_slow_heartbeat_stretches_the_silence_limit_only_to_max_silence() -> None:
    _dialer, listener = pair(make_core(True, heartbeat=3600.0),
                             make_core(False, bounds=PeerBounds(max_silence=30.0)))
    assert listener.tick(1.0) == []
    assert sent(listener) == [Ping()]  # our pings follow our own heartbeat, not the peer's
    assert listener.tick(29.9) == []
    (ended,) = listener.tick(30.1)
    assert isinstance(ended, SessionEnded) and isinstance(ended.error, PeerLost)
    assert "silent for more than 30 s" in str(ended.error)


def test_a_slow_heartbeat_within_max_silence_is_honoured() -> None:
    _dialer, listener = pair(make_core(True, heartbeat=4.0), make_core(False))
    assert listener.tick(11.9) == []
    assert isinstance(listener.tick(12.1)[0], SessionEnded)


def test_a_grant_of_more_than_was_sent_ends_the_session() -> None:
    dialer, listener = pair()
    end, _reader = byte_channel(listener, dialer)
    listener.send_chunk(end, b"x" * 100)
    (ended,) = listener.receive([encode_header(Credit(channel=end.id, amount=101))])
    assert isinstance(ended, SessionEnded) and "has 100 bytes in flight" in str(ended.error)


def test_the_send_budget_holds_back_channels_past_their_reserve_until_credit_returns() -> None:
    budget = MIB
    dialer, listener = pair(make_core(True, window=MIB),
                            make_core(False, bounds=PeerBounds(max_window=MIB,
                                                               send_budget=budget)))
    reserve = MAX_GRANT_BATCH  # the peer grants after this much: below it a channel may go on
    (a, ra), (b, _rb), (c, _rc) = (byte_channel(listener, dialer) for _ in range(3))
    for _ in range(12):
        listener.send_chunk(a, b"x" * STREAM_CHUNK)  # 768 KiB: a keeps 256 KiB of credit
    assert write_while_allowed(listener, b) == budget - 12 * STREAM_CHUNK
    assert write_while_allowed(listener, c) == reserve  # a new stream still makes progress
    assert a.credit > 0 and not listener.can_send(a)  # credit, but the budget is spent
    assert listener.in_flight == budget + reserve
    for event in deliver(listener, dialer):
        if isinstance(event, Delivered) and event.end is ra:
            dialer.consumed(ra, event.size)
    # a's 768 KiB come back in grants of MAX_GRANT_BATCH; once the budget has room, every
    # writer that waited for it is woken (CreditAvailable), and looks again.
    woken = [event.end.id for event in deliver(dialer, listener)
             if isinstance(event, CreditAvailable)]
    assert sorted(woken) == [a.id, b.id, c.id]
    assert listener.in_flight == budget + reserve - 12 * STREAM_CHUNK
    assert listener.can_send(a) and listener.can_send(b)


def test_a_peer_that_never_reads_costs_at_most_the_budget_and_a_reserve_per_channel() -> None:
    budget = 2 * MIB
    dialer, listener = pair(make_core(True, window=GIB),
                            make_core(False, bounds=PeerBounds(max_window=MIB, send_budget=budget)))
    ends = [byte_channel(listener, dialer)[0] for _ in range(40)]
    for end in ends:
        write_while_allowed(listener, end)
    assert budget <= listener.in_flight <= budget + len(ends) * (MAX_GRANT_BATCH + STREAM_CHUNK)
    assert listener.in_flight < len(ends) * MIB / 2  # far below channels x window
    assert all(not listener.can_send(end) for end in ends)


def test_ending_a_channel_releases_what_it_had_in_flight() -> None:
    dialer, listener = pair()
    end, _reader = byte_channel(listener, dialer)
    listener.send_chunk(end, b"x" * 1000)
    other, _ = byte_channel(listener, dialer)
    listener.send_chunk(other, b"y" * 10, last=True)
    assert listener.in_flight == 1000
    listener.abort_channel(end, ChannelClosed("done"))
    assert listener.in_flight == 0
