"""The sans-I/O session core: frames in, events out; local operations in, frames out.

One ``SessionCore`` is one peer-to-peer session (h11's shape). It holds the channel table, the
handshake, flow-control credit (per channel, and the session's send budget) and liveness clocks,
and knows nothing of sockets or event loops:
the shell feeds it received frames and the time, drains ``outbox`` onto the transport, and acts
on the returned events. Every decision follows the tables in ``_states``. What the peer
announces (its window, its heartbeat) is honoured only up to this side's ``PeerBounds``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from channels._states import (
    CHANNEL_TABLE,
    SESSION_TABLE,
    EndOutcome,
    Input,
    Role,
    SessionInput,
    SessionState,
)
from protocol.codec import MessageCodec, decode_error, decode_header, encode_error, encode_header
from protocol.errors import (
    ChannelClosed,
    ChannelError,
    LimitExceeded,
    PeerLost,
    ProtocolError,
    ShoalError,
    VersionMismatch,
    error_from_info,
)
from protocol.frames import (
    HAS_BODY,
    MAGIC,
    Abort,
    Bye,
    Chunk,
    Close,
    Credit,
    Data,
    Fail,
    Hello,
    Ping,
    SessionOptions,
    Welcome,
)
from protocol.limits import DEFAULT_BOUNDS, MAX_GRANT_BATCH, PeerBounds
from protocol.messages import Message
from protocol.refs import ChannelRef, RefKind
from protocol.version import SUPPORTED_VERSIONS, choose_version

Frame = list[bytes]
# The events and channel ends below are msgspec Structs rather than dataclasses: slotted and
# typed all the same, and built in C, which a one-shot client's start-up notices (~3 ms).
ROOT_CHANNEL = 1  # the dialer sends on it, the listener receives: the session's first channel


class ChannelEnd(msgspec.Struct, eq=False):
    """This side's end of one channel. ``sink`` is the shell's object for it."""

    id: int
    role: Role
    is_bytes: bool
    credit: int  # SEND: bytes we may still send; RECV: bytes the peer may still send
    sink: Any = None
    unacked: int = 0  # RECV: bytes consumed locally and not yet granted back
    in_flight: int = 0  # SEND: bytes sent and not yet granted back
    grant: Any = None  # the shell's callback that gives consumed bytes back (cached per end)


class Established(msgspec.Struct, frozen=True):
    version: int
    peer: SessionOptions


class Delivered(msgspec.Struct, frozen=True):
    """A message (or, on a byte channel, a chunk) arrived on ``end``."""

    end: ChannelEnd
    item: Message | bytes
    size: int


class Ended(msgspec.Struct, frozen=True):
    """``end`` is done: cleanly when ``error`` is None."""

    end: ChannelEnd
    error: ShoalError | None


class CreditAvailable(msgspec.Struct, frozen=True):
    end: ChannelEnd


class SessionEnded(msgspec.Struct, frozen=True):
    """The session is over; ``ends`` were still open and now fail with ``error``."""

    error: ShoalError
    ends: tuple[ChannelEnd, ...]


Event = Established | Delivered | Ended | CreditAvailable | SessionEnded
MakeRef = Callable[[RefKind, ChannelEnd], ChannelRef]
ExportRef = Callable[[ChannelRef], int]

_SESSION_INPUT = {
    Hello: SessionInput.HELLO,
    Welcome: SessionInput.WELCOME,
    Ping: SessionInput.PING,
    Fail: SessionInput.FAIL,
    Bye: SessionInput.BYE,
}


class SessionCore:
    """The protocol state of one session. Not thread-safe; no I/O; time is passed in."""

    def __init__(
        self,
        *,
        dialer: bool,
        options: SessionOptions,
        make_ref: MakeRef,
        export_ref: ExportRef,
        timeout: float,
        now: float,
        versions: tuple[int, ...] = SUPPORTED_VERSIONS,
        bounds: PeerBounds = DEFAULT_BOUNDS,
    ) -> None:
        self.dialer = dialer
        self.options = options
        self.versions = versions
        self.timeout = timeout
        self.bounds = bounds
        self.in_flight = 0  # bytes sent on all channels and not yet granted back
        self._send_window = 0  # credit each channel we send on starts with (set when open)
        self._reserve = 0  # in flight on one channel before the peer must grant (set when open)
        self._grant_at = min((options.limits.window + 1) // 2, MAX_GRANT_BATCH)
        self._starved: dict[int, ChannelEnd] = {}  # ends that waited for the send budget
        self.state = SessionState.AWAIT_HELLO
        self.version = 0
        self.peer: SessionOptions | None = None
        self.outbox: list[Frame] = []
        self.ends: dict[int, ChannelEnd] = {}
        self._make_ref = make_ref
        self._next_id = 3 if dialer else 2  # ids of this side; 1 is the root channel
        self._peer_high = 1  # highest peer-allocated id seen
        self._adopted: list[ChannelEnd] | None = None
        self._opened: list[ChannelEnd] | None = None
        self._last_rx = now
        self._last_ping = now
        self.codec = MessageCodec(export_ref, self._import_ref, options.limits.max_frame)
        if dialer:
            self.state = SessionState.AWAIT_WELCOME
            self._emit(Hello(magic=MAGIC, versions=list(versions), options=options))

    # --- incoming -------------------------------------------------------------------------------
    def receive(self, parts: Sequence[bytes]) -> list[Event]:
        """Handle one frame from the peer."""
        if self.state is SessionState.ENDED:
            return []
        try:
            header = decode_header(parts[0])
            body_expected = type(header) in HAS_BODY
            if len(parts) != 1 + body_expected:
                raise ProtocolError(
                    f"a {type(header).__name__} frame has {1 + body_expected} parts, got "
                    f"{len(parts)}"
                )
            max_frame = self.options.limits.max_frame
            if body_expected and len(parts[1]) > max_frame:
                raise LimitExceeded(f"frame body of {len(parts[1])} bytes exceeds {max_frame}")
        except ProtocolError as exc:
            return self._fail(exc)
        kind = type(header)
        if kind is Data or kind is Chunk:
            return self._on_data(header, parts[1])  # type: ignore[arg-type]
        if kind is Credit or kind is Close or kind is Abort:
            if self.state is not SessionState.OPEN:
                return self._fail(ProtocolError(f"{kind.__name__} before the handshake"))
            return self._on_control(header, parts[1] if kind is Abort else b"")  # type: ignore[arg-type]
        return self._on_session_frame(header, parts[1] if kind is Fail else b"")

    def touch(self, now: float) -> None:
        """The peer was heard from at ``now``."""
        self._last_rx = now

    def _on_session_frame(self, header: object, body: bytes) -> list[Event]:
        next_state = SESSION_TABLE.get((self.state, _SESSION_INPUT[type(header)]))  # type: ignore[index]
        if next_state is None:
            return self._fail(
                ProtocolError(f"unexpected {type(header).__name__} frame in state "
                              f"{self.state.value}")
            )
        if isinstance(header, Hello):
            return self._on_hello(header)
        if isinstance(header, Welcome):
            if header.version not in self.versions:
                return self._fail(VersionMismatch(
                    f"the peer chose protocol version {header.version}, which this side does "
                    f"not speak (it speaks {', '.join(map(str, self.versions))})"))
            return self._establish(header.version, header.options)
        if isinstance(header, Fail):
            try:
                error = error_from_info(decode_error(body))
            except ProtocolError as exc:
                error = exc
            return self._end(error, notify_peer=False)
        if isinstance(header, Bye):
            return self._end(PeerLost("the peer closed the session"), notify_peer=False)
        return []  # Ping: only its arrival matters

    def _on_hello(self, hello: Hello) -> list[Event]:
        if hello.magic != MAGIC:
            return self._fail(ProtocolError(f"not a shoal peer (magic {hello.magic[:16]!r})"))
        try:
            version = choose_version(hello.versions, self.versions)
        except VersionMismatch as exc:
            return self._fail(exc)
        self._emit(Welcome(version=version, options=self.options))
        return self._establish(version, hello.options)

    def _establish(self, version: int, peer: SessionOptions) -> list[Event]:
        self.state = SessionState.OPEN
        self.version = version
        self.peer = peer
        # A peer announcing a huge window must not make us queue that much for it; it grants
        # back after min(half its window, MAX_GRANT_BATCH), so the clamp never stalls it.
        self._send_window = min(peer.limits.window, self.bounds.max_window)
        self._reserve = min((peer.limits.window + 1) // 2, MAX_GRANT_BATCH)
        root_role = Role.SEND if self.dialer else Role.RECV
        self.ends[ROOT_CHANNEL] = ChannelEnd(ROOT_CHANNEL, root_role, False,
                                             self._initial_credit(root_role))
        return [Established(version, peer)]

    def _on_data(self, header: Data | Chunk, body: bytes) -> list[Event]:
        if self.state is not SessionState.OPEN:
            return self._fail(ProtocolError(f"{type(header).__name__} before the handshake"))
        end = self.ends.get(header.channel)
        if end is None:
            return self._unknown_channel(header.channel, reply=True)
        is_chunk = type(header) is Chunk
        outcome = CHANNEL_TABLE[(end.role, Input.PEER_LAST if header.last else Input.PEER_DATA)]
        if outcome is EndOutcome.VIOLATION or end.is_bytes != is_chunk:
            side = "sender" if end.role is Role.SEND else "receiver"
            return self._fail(ProtocolError(
                f"{type(header).__name__} on channel {end.id}, where this side is the "
                f"{'byte ' if end.is_bytes else ''}{side}"
            ))
        if end.credit <= 0:
            return self._fail(ProtocolError(f"the peer overran the window of channel {end.id}"))
        size = len(body)
        end.credit -= size
        item: Message | bytes
        if is_chunk:
            item = bytes(body)
        else:
            try:
                item = self._decode(body)
            except ProtocolError as exc:
                return self._refuse_message(end, body, exc)
        events: list[Event] = [Delivered(end, item, size)]
        if outcome is EndOutcome.END:
            self._forget(end)
            events.append(Ended(end, None))
        return events

    def _decode(self, body: bytes) -> Message:
        self._adopted = []
        high = self._peer_high
        try:
            return self.codec.decode(body)
        except ProtocolError:
            for end in self._adopted:  # the channels the refused message introduced
                self.ends.pop(end.id, None)
            self._peer_high = high
            raise
        finally:
            self._adopted = None

    def _refuse_message(self, end: ChannelEnd, body: bytes, error: ProtocolError) -> list[Event]:
        """Drop a message that does not decode, and tell everyone who waits on it.

        Channels the message names (its reply Sender, say) are aborted with the error, so the
        peer's caller learns why at once. The root channel stays open for the next request;
        any other channel is broken and fails at both ends.
        """
        refs: set[int] = set()

        def collect(code: int, data: memoryview) -> None:
            if code in RefKind.__members__.values() and len(data) == 8:
                refs.add(int.from_bytes(data, "big"))

        with contextlib.suppress(Exception):
            msgspec.msgpack.decode(body, ext_hook=collect)
        for channel_id in sorted(refs):
            if (channel_id & 1) != (self._next_id & 1) and self._peer_high < channel_id \
                    < (1 << 53) and channel_id not in self.ends:
                self._peer_high = channel_id
                self._emit(Abort(channel=channel_id), encode_error(error.to_info()))
        if end.id == ROOT_CHANNEL:
            return []
        self._forget(end)
        self._emit(Abort(channel=end.id), encode_error(error.to_info()))
        return [Ended(end, error)]

    def _import_ref(self, kind: RefKind, channel_id: int) -> ChannelRef:
        if self._adopted is None:
            raise ProtocolError("channel reference outside a message")
        if (channel_id & 1) == (self._next_id & 1):
            raise ProtocolError(f"channel {channel_id} is not the peer's to open")
        if channel_id in self.ends or channel_id <= self._peer_high:
            raise ProtocolError(f"channel {channel_id} is already in use")
        if len(self.ends) >= self.options.limits.max_channels:
            raise LimitExceeded(f"more than {self.options.limits.max_channels} open channels")
        self._peer_high = channel_id
        role = Role.SEND if kind.holder_sends else Role.RECV
        end = ChannelEnd(channel_id, role, kind.is_bytes, self._initial_credit(role))
        self.ends[channel_id] = end
        self._adopted.append(end)
        return self._make_ref(kind, end)

    def _on_control(self, header: Credit | Close | Abort, body: bytes) -> list[Event]:
        end = self.ends.get(header.channel)
        if end is None:
            return self._unknown_channel(header.channel, reply=False)
        if isinstance(header, Credit):
            return self._on_credit(end, header.amount)
        if isinstance(header, Close):
            if CHANNEL_TABLE[(end.role, Input.PEER_CLOSE)] is EndOutcome.VIOLATION:
                return self._fail(ProtocolError(f"close of channel {end.id}, which it reads"))
            self._forget(end)
            return [Ended(end, None)]
        try:
            error = error_from_info(decode_error(body))
        except ProtocolError as exc:
            error = exc
        self._forget(end)
        return [Ended(end, error)]

    def _on_credit(self, end: ChannelEnd, amount: int) -> list[Event]:
        if CHANNEL_TABLE[(end.role, Input.PEER_CREDIT)] is EndOutcome.VIOLATION:
            return self._fail(ProtocolError(f"credit for channel {end.id}, which it sends"))
        if amount > end.in_flight:
            # A receiver grants only bytes it consumed: more than we sent is a lie that would
            # let it make us queue without bound.
            return self._fail(ProtocolError(
                f"credit of {amount} bytes for channel {end.id}, which has {end.in_flight} "
                "bytes in flight"))
        was_blocked = end.credit <= 0
        was_full = self.in_flight >= self.bounds.send_budget
        end.credit += amount
        end.in_flight -= amount
        self.in_flight -= amount
        woken: dict[int, ChannelEnd] = {}
        if was_blocked and end.credit > 0:
            woken[end.id] = end
        starved = self._starved
        if starved:
            if was_full and self.in_flight < self.bounds.send_budget:
                woken.update(starved)  # writers look again; the losers wait once more
                starved.clear()
            elif end.id in starved and end.in_flight < self._reserve:
                woken[end.id] = starved.pop(end.id)
        return [CreditAvailable(e) for e in woken.values()]

    def _unknown_channel(self, channel_id: int, *, reply: bool) -> list[Event]:
        mine = (channel_id & 1) == (self._next_id & 1)
        stale = channel_id < self._next_id if mine else channel_id <= self._peer_high
        if not stale and reply:
            # Tell the peer its channel does not exist here; never answer control frames, so
            # two confused peers cannot loop.
            error = ProtocolError(f"unknown channel {channel_id}")
            self._emit(Abort(channel=channel_id), encode_error(error.to_info()))
        return []

    # --- outgoing -------------------------------------------------------------------------------
    def open_channel(self, kind: RefKind, sink: Any) -> ChannelEnd:
        """Allocate a channel whose other end the peer will hold as a ``kind`` reference."""
        self._require_open()
        if len(self.ends) >= self.options.limits.max_channels:
            raise LimitExceeded(f"more than {self.options.limits.max_channels} open channels")
        role = Role.RECV if kind.holder_sends else Role.SEND
        end = ChannelEnd(self._next_id, role, kind.is_bytes, self._initial_credit(role), sink)
        self._next_id += 2
        self.ends[end.id] = end
        if self._opened is not None:
            self._opened.append(end)
        return end

    def send_message(self, end: ChannelEnd, message: Message, *, last: bool = False) -> None:
        self._check_send(end, last, is_bytes=False)
        self._opened = []
        try:
            body = self.codec.encode(message)
            peer_max = self.peer.limits.max_frame if self.peer else len(body)
            if len(body) > peer_max:
                raise LimitExceeded(f"message of {len(body)} bytes exceeds the peer's limit "
                                    f"of {peer_max}")
        except BaseException:
            for opened in self._opened:
                self.ends.pop(opened.id, None)
            raise
        finally:
            self._opened = None
        self._spend(end, len(body))
        self.outbox.append([encode_header(Data(channel=end.id, last=last)), body])
        if last:
            self._forget(end)

    def send_chunk(self, end: ChannelEnd, data: bytes, *, last: bool = False) -> None:
        self._check_send(end, last, is_bytes=True)
        if len(data) > self.max_chunk:
            raise LimitExceeded(f"chunk of {len(data)} bytes exceeds {self.max_chunk}")
        self._spend(end, len(data))
        self.outbox.append([encode_header(Chunk(channel=end.id, last=last)), data])
        if last:
            self._forget(end)

    @property
    def max_chunk(self) -> int:
        peer_max = self.peer.limits.max_frame if self.peer else self.options.limits.max_frame
        return min(self.options.limits.max_frame, peer_max)

    def _check_send(self, end: ChannelEnd, last: bool, *, is_bytes: bool) -> None:
        self._require_open()
        if self.ends.get(end.id) is not end:
            raise ChannelClosed(f"channel {end.id} is closed")
        outcome = CHANNEL_TABLE[(end.role, Input.LOCAL_LAST if last else Input.LOCAL_SEND)]
        if outcome is EndOutcome.MISUSE or end.is_bytes != is_bytes:
            raise ChannelError(f"channel {end.id} cannot be written from this side")
        if not self.can_send(end):
            raise ChannelError(f"channel {end.id} has no credit; wait for CreditAvailable")

    def can_send(self, end: ChannelEnd) -> bool:
        """Whether ``end`` may send now; when not, CreditAvailable tells when it may.

        A channel needs credit of its own, and the session's send budget must not be spent
        unless the channel has less in flight than the peer waits for before granting (so a
        channel is never stuck behind others' unread bytes with credit it cannot earn back).
        """
        if end.credit <= 0:
            return False
        if self.in_flight < self.bounds.send_budget or end.in_flight < self._reserve:
            return True
        self._starved[end.id] = end
        return False

    def close_channel(self, end: ChannelEnd) -> None:
        """The sender is done (a reader cancels with ``abort_channel``)."""
        if self.ends.get(end.id) is not end or self.state is not SessionState.OPEN:
            return
        if CHANNEL_TABLE[(end.role, Input.LOCAL_CLOSE)] is EndOutcome.MISUSE:
            raise ChannelError(f"channel {end.id} is read here; cancel it with abort")
        self._forget(end)
        self._emit(Close(channel=end.id))

    def abort_channel(self, end: ChannelEnd, error: ShoalError) -> None:
        if self.ends.get(end.id) is not end or self.state is not SessionState.OPEN:
            return
        self._forget(end)
        self._emit(Abort(channel=end.id), encode_error(error.to_info()))

    def consumed(self, end: ChannelEnd, size: int) -> None:
        """Local code took ``size`` bytes off ``end``: grant them back in batches."""
        if self.ends.get(end.id) is not end or self.state is not SessionState.OPEN:
            return
        end.unacked += size
        if end.unacked >= self._grant_at:
            end.credit += end.unacked
            self._emit(Credit(channel=end.id, amount=end.unacked))
            end.unacked = 0

    def tick(self, now: float) -> list[Event]:
        """Liveness: ping when due; end the session when the peer has been silent too long."""
        if self.state is SessionState.ENDED:
            return []
        # A peer with a slow heartbeat may stretch our timeout, but only up to max_silence: a
        # silent peer announcing an hour must not hold its session (and a place) for hours.
        peer_beat = self.peer.heartbeat if self.peer else 0.0
        limit = max(self.timeout, min(3 * peer_beat, self.bounds.max_silence))
        if now - self._last_rx > limit:
            return self._end(PeerLost(f"the peer has been silent for more than {limit:g} s"),
                             notify_peer=True)
        if self.state is SessionState.OPEN and now - self._last_ping >= self.options.heartbeat:
            self._last_ping = now
            self._emit(Ping())
        return []

    def end(self, error: ShoalError | None = None) -> list[Event]:
        """End the session from this side: Bye when clean, Fail with ``error`` otherwise."""
        if self.state is SessionState.ENDED:
            return []
        return self._end(error or ChannelClosed("the session was closed"), notify_peer=True,
                         clean=error is None)

    def drop(self, error: ShoalError) -> list[Event]:
        """The transport lost the peer: end the session with nothing more to send."""
        if self.state is SessionState.ENDED:
            return []
        events = self._end(error, notify_peer=False)
        self.outbox.clear()
        return events

    # --- helpers --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether any channel besides the root is open: a request is under way."""
        return len(self.ends) > (ROOT_CHANNEL in self.ends)

    @property
    def idle_since(self) -> float:
        """When the peer was last heard from."""
        return self._last_rx

    def _initial_credit(self, role: Role) -> int:
        if role is Role.RECV:
            return self.options.limits.window
        return self._send_window

    def _spend(self, end: ChannelEnd, size: int) -> None:
        end.credit -= size
        end.in_flight += size
        self.in_flight += size

    def _forget(self, end: ChannelEnd) -> None:
        """``end`` leaves the table; what it had in flight no longer counts against the
        budget (the peer will not grant it back). A writer waiting for the budget is not woken
        here: it has a reserve in flight, so the peer's next grant on it wakes it."""
        del self.ends[end.id]
        self.in_flight -= end.in_flight
        self._starved.pop(end.id, None)

    def _require_open(self) -> None:
        if self.state is not SessionState.OPEN:
            raise PeerLost("the session is not open") if self.state is SessionState.ENDED \
                else ChannelError("the session handshake is not complete")

    def _emit(self, header: object, body: bytes | None = None) -> None:
        head = encode_header(header)  # type: ignore[arg-type]
        self.outbox.append([head] if body is None else [head, body])

    def _fail(self, error: ShoalError) -> list[Event]:
        return self._end(error, notify_peer=True)

    def _end(self, error: ShoalError, *, notify_peer: bool, clean: bool = False) -> list[Event]:
        was_open = self.state is not SessionState.ENDED
        self.state = SessionState.ENDED
        if notify_peer and was_open:
            if clean:
                self._emit(Bye())
            else:
                self._emit(Fail(), encode_error(error.to_info()))
        ends = tuple(self.ends.values())
        self.ends.clear()
        self._starved.clear()
        self.in_flight = 0
        return [SessionEnded(error, ends)]
