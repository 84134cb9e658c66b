"""A blocking shell around the session core, for one-shot clients: no event loop, no threads.

The ``shoal`` command opens one session, sends a verb or two, reads the answers and exits; an
event loop costs more to import and start than that whole exchange. ``BlockingSession`` drives
the same ``SessionCore`` as the asyncio shell over a plain socket that speaks ZMTP to the
listener's ZeroMQ ROUTER (``channels._dial``, no pyzmq and no I/O thread): it sends what the core
wants sent and feeds it frames while its caller waits for something (a reply, credit, the end of
a stream, or one of the caller's own descriptors becoming readable).

Channel ends are the objects below. The ones this side creates (``reply_inbox``,
``byte_source``) are handed to the peer inside a message; the ones the peer hands us arrive as
``BlockingReceiver``/``BlockingByteReader``/``BlockingSender``/``BlockingByteWriter``.
"""

from __future__ import annotations

import collections
import select
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from channels._dial import ZmtpConnection
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
from protocol.errors import (
    ChannelClosed,
    ChannelError,
    ConnectFailed,
    EndOfChannel,
    LimitExceeded,
    PeerLost,
    ProtocolError,
    ShoalError,
    Timeout,
)
from protocol.frames import SessionOptions
from protocol.limits import DEFAULT_BOUNDS, STREAM_CHUNK, PeerBounds, SessionLimits
from protocol.messages import Message
from protocol.refs import ByteReaderRef, ByteWriterRef, ChannelRef, ReceiverRef, RefKind, SenderRef

if TYPE_CHECKING:
    # As in channels._dial: CURVE is loaded by who makes a CurveClient (tcp only).
    from channels._curve import CurveClient


# --- channel ends ---------------------------------------------------------------------------
class _ReadEnd:
    """Items the peer sent on one channel, queued until the caller takes them."""

    __slots__ = ("_end", "_error", "_items", "_session", "ended")

    def __init__(self, session: BlockingSession, end: ChannelEnd | None = None) -> None:
        self._session = session
        self._end = end
        self._items: collections.deque[tuple[Any, int]] = collections.deque()
        self._error: ShoalError | None = None
        self.ended = False

    def push(self, item: Any, size: int) -> None:
        self._items.append((item, size))

    def finish(self, error: ShoalError | None) -> None:
        self.ended = True
        self._error = error

    def ready(self) -> bool:
        """Whether ``take`` would return (or raise) without waiting."""
        return bool(self._items) or self.ended

    def exhausted(self) -> bool:
        """Whether the channel has ended and everything it delivered has been taken."""
        return self.ended and not self._items

    def refusal(self) -> ShoalError | None:
        """The error the channel ended with before it delivered anything, if it did."""
        return self._error if self.ended and not self._items else None

    def take(self, timeout: float | None = None) -> Any:
        """The next item; ``EndOfChannel`` at a clean end, the peer's error at a failed one."""
        if not self._items and not self.ended:
            self._session.wait_for(self.ready, timeout)
        if self._items:
            item, size = self._items.popleft()
            if self._end is not None:
                self._session.consumed(self._end, size)
            return item
        raise self._error or EndOfChannel("the channel was closed")

    def close(self) -> None:
        """Stop reading: the peer's writer is told the reader went away."""
        if not self.ended and self._end is not None:
            self._session.abort(self._end, ChannelClosed("the receiver was closed"))
        self.ended = True
        self._items.clear()


class _MessageReader(_ReadEnd):
    __slots__ = ()

    def recv(self, timeout: float | None = None) -> Message:
        item: Message = self.take(timeout)
        return item

    def __iter__(self) -> Iterator[Message]:
        """Every message until the channel ends cleanly (a failure raises)."""
        while True:
            try:
                yield self.recv()
            except EndOfChannel:
                return


class _ByteReader(_ReadEnd):
    __slots__ = ()

    def read(self, timeout: float | None = None) -> bytes:
        """The next chunk, or ``b""`` once the stream has ended cleanly."""
        try:
            item: bytes = self.take(timeout)
        except EndOfChannel:
            return b""
        return item


class ReplyInbox(_MessageReader, SenderRef):
    """A channel we read, handed to the peer as the Sender it answers on."""

    __slots__ = ()


class BlockingReceiver(_MessageReader, ReceiverRef):
    """A Receiver the peer handed us."""

    __slots__ = ()


class BlockingByteReader(_ByteReader, ByteReaderRef):
    """A byte stream the peer handed us to read (a container's output, say)."""

    __slots__ = ()


class _WriteEnd:
    """Our end of a channel we send on; every send waits for the peer's credit."""

    __slots__ = ("_end", "_error", "_session", "done")

    def __init__(self, session: BlockingSession, end: ChannelEnd | None = None) -> None:
        self._session = session
        self._end = end
        self._error: ShoalError | None = None
        self.done = False

    def finish(self, error: ShoalError | None) -> None:
        if not self.done:
            self._error = error or ChannelClosed("the peer closed the channel")
        self.done = True

    def writable(self) -> bool:
        """Whether a send would go out (or fail) without waiting for credit."""
        return self.done or (self._end is not None and self._session.core.can_send(self._end))

    def _ready_end(self, timeout: float | None) -> ChannelEnd:
        if self._end is None:
            raise ChannelError("this channel has not been sent to the peer yet")
        if not self.writable():
            self._session.wait_for(self.writable, timeout)
        if self.done:
            raise self._error or ChannelClosed("send on a closed channel")
        return self._end

    def close(self) -> None:
        """The stream or channel is complete."""
        if not self.done and self._end is not None:
            self._session.close_channel(self._end)
        self.done = True
        self._error = ChannelClosed("send on a channel this side closed")

    def abort(self, error: ShoalError) -> None:
        if not self.done and self._end is not None:
            self._session.abort(self._end, error)
        self.done = True
        self._error = error


class _MessageWriter(_WriteEnd):
    __slots__ = ()

    def send(self, message: Message, *, timeout: float | None = None) -> None:
        end = self._ready_end(timeout)
        self._session.send_message(end, message)


class _ChunkWriter(_WriteEnd):
    __slots__ = ()

    def write(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send ``data`` in chunks, each when the peer has room for it."""
        size = min(STREAM_CHUNK, self._session.max_chunk)
        view = memoryview(data)
        for start in range(0, len(view), size):
            end = self._ready_end(timeout)
            self._session.send_chunk(end, bytes(view[start:start + size]))


class BlockingSender(_MessageWriter, SenderRef):
    """A Sender the peer handed us (a terminal's resize channel, say)."""

    __slots__ = ()


class BlockingByteWriter(_ChunkWriter, ByteWriterRef):
    """A byte stream the peer handed us to write."""

    __slots__ = ()


class ByteSource(_ChunkWriter, ByteReaderRef):
    """A byte stream we write, handed to the peer as the ByteReader it reads (stdin, an
    image archive)."""

    __slots__ = ()


_Local = ReplyInbox | ByteSource
_IMPORTED: dict[RefKind, type[_ReadEnd] | type[_WriteEnd]] = {
    RefKind.RECEIVER: BlockingReceiver,
    RefKind.BYTE_READER: BlockingByteReader,
    RefKind.SENDER: BlockingSender,
    RefKind.BYTE_WRITER: BlockingByteWriter,
}


# --- the session ----------------------------------------------------------------------------
class BlockingSession:
    """One session with a listener, driven by whoever waits on it."""

    def __init__(self, address: str, *, connect_timeout: float = 5.0, timeout: float = 5.0,
                 options: SessionOptions | None = None,
                 bounds: PeerBounds = DEFAULT_BOUNDS, curve: CurveClient | None = None) -> None:
        self.address = address
        self.options = options or SessionOptions(name="shoal-cli", limits=SessionLimits())
        self.error: ShoalError | None = None
        self._root: BlockingSender | None = None
        self._pending: list[Callable[[], None]] | None = None
        deadline = time.monotonic() + connect_timeout
        try:
            self._link = ZmtpConnection(address, max_message=self.options.limits.max_frame + 4096,
                                        timeout=connect_timeout, curve=curve)
        except ConnectFailed as exc:
            raise ConnectFailed(f"no shoal session with {address}: {exc}") from None
        self._poller = select.poll()
        self._poller.register(self._link, select.POLLIN)
        self.core = SessionCore(dialer=True, options=self.options, make_ref=self._make_ref,
                                export_ref=self._export_ref, timeout=timeout,
                                now=time.monotonic(), bounds=bounds)
        # A one-shot client meets a handful of message types: a decoder for each of those
        # costs less than one for every type (msgspec reads each of them for it).
        self.core.codec.decode_each_type_alone()
        self._flush()
        try:
            self.wait_for(lambda: self._root is not None, deadline - time.monotonic())
        except Timeout:
            self.close()
            raise ConnectFailed(f"no shoal session with {address}: no answer within "
                                f"{connect_timeout:g} s") from None
        except ShoalError as exc:
            self.close()
            if isinstance(exc, ProtocolError) and not isinstance(exc, LimitExceeded):
                raise  # e.g. VersionMismatch: the peer's own words
            raise ConnectFailed(f"no shoal session with {address}: {exc}") from exc

    # --- what callers use --------------------------------------------------------------------
    @property
    def peer_name(self) -> str:
        return self.core.peer.name if self.core.peer else ""

    def send(self, message: Message) -> None:
        """Send ``message`` on the session's root channel (the listener's receiver)."""
        if self._root is None:
            raise self.error or ConnectFailed("the session is not established")
        self._root.send(message)

    def reply_inbox(self) -> ReplyInbox:
        """A channel to put in a request as its ``reply`` Sender."""
        return ReplyInbox(self)

    def byte_source(self) -> ByteSource:
        """A byte stream to put in a request as a ByteReader the peer reads."""
        return ByteSource(self)

    def request(self, make: Callable[[SenderRef], Message], *,
                timeout: float | None = None) -> Message:
        """Send ``make(reply)`` and return the single reply; a refusal raises the peer's error."""
        reply = self.reply_inbox()
        self.send(make(reply))
        try:
            return reply.recv(timeout)
        except EndOfChannel:
            raise ChannelClosed("the service closed the reply channel without answering") \
                from None
        finally:
            reply.close()

    def watch(self, fd: int) -> None:
        """Have ``wait_for`` report ``fd`` (one of the caller's descriptors) when readable."""
        self._poller.register(fd, select.POLLIN)

    def unwatch(self, fd: int) -> None:
        self._poller.unregister(fd)

    def wait_for(self, ready: Callable[[], bool], timeout: float | None = None, *,
                 on_readable: Callable[[list[int]], None] | None = None) -> None:
        """Handle frames until ``ready()`` (asked again after each batch). Watched descriptors
        that become readable meanwhile go to ``on_readable``. Raises the session's error if it
        ends first, ``Timeout`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        beat = max(min(self.options.heartbeat, self.core.timeout) / 2, 0.01)
        while not ready():
            if self.error is not None:
                raise self.error
            wait = beat if deadline is None else min(beat, deadline - time.monotonic())
            if wait <= 0:
                raise Timeout(f"no answer within {timeout:g} s")
            readable = self._poller.poll(max(1, int(wait * 1000)))
            self._handle_poll(readable, on_readable)
            self._tick()

    def close(self) -> None:
        """Say goodbye (if the session is open) and close the connection."""
        if self._link.closed:
            return
        self._handle(self.core.end())
        self._flush()
        self._link.close()

    def __enter__(self) -> BlockingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what channel ends use ---------------------------------------------------------------
    @property
    def max_chunk(self) -> int:
        return self.core.max_chunk

    def send_message(self, end: ChannelEnd, message: Message) -> None:
        pending: list[Callable[[], None]] = []
        self._pending = pending
        try:
            self.core.send_message(end, message)
        finally:
            self._pending = None
        for bind in pending:
            bind()
        self._flush()

    def send_chunk(self, end: ChannelEnd, data: bytes) -> None:
        self.core.send_chunk(end, data)
        self._flush()

    def consumed(self, end: ChannelEnd, size: int) -> None:
        self.core.consumed(end, size)
        self._flush()

    def close_channel(self, end: ChannelEnd) -> None:
        self.core.close_channel(end)
        self._flush()

    def abort(self, end: ChannelEnd, error: ShoalError) -> None:
        self.core.abort_channel(end, error)
        self._flush()

    # --- frames ------------------------------------------------------------------------------
    def _handle_poll(self, readable: list[tuple[int, int]],
                     on_readable: Callable[[list[int]], None] | None) -> None:
        link = self._link.fileno()
        mine = [fd for fd, _ in readable if fd != link]
        if len(mine) < len(readable):
            self._receive()
        if mine and on_readable is not None:
            on_readable(mine)

    def _receive(self) -> None:
        core = self.core
        try:
            messages = self._link.receive()
        except ShoalError as exc:  # the peer is gone, or spoke something else than ZMTP
            self._handle(core.drop(exc))
            return
        for parts in messages:
            core.touch(time.monotonic())
            self._handle(core.receive(parts))
            if self.error is not None:
                break
        self._flush()

    def _tick(self) -> None:
        self._handle(self.core.tick(time.monotonic()))
        self._flush()

    def _flush(self) -> None:
        outbox = self.core.outbox
        if not outbox or self._link.closed:
            outbox.clear()
            return
        frames = list(outbox)
        outbox.clear()
        try:
            for frame in frames:
                self._link.send(frame)
        except ShoalError as exc:
            self._handle(self.core.drop(exc))

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if type(event) is Delivered:
                sink = event.end.sink
                if isinstance(sink, _ReadEnd):
                    sink.push(event.item, event.size)
                elif event.end.id != ROOT_CHANNEL:
                    self.core.consumed(event.end, event.size)  # nobody reads it
            elif type(event) is Ended:
                if isinstance(event.end.sink, _ReadEnd | _WriteEnd):
                    event.end.sink.finish(event.error)
            elif type(event) is Established:
                root = self.core.ends[ROOT_CHANNEL]
                self._root = BlockingSender(self, root)
                root.sink = self._root
            elif type(event) is SessionEnded:
                error = event.error
                self.error = error if isinstance(error, ChannelError) or self._root is None \
                    else PeerLost(f"session with {self.address} ended: {error}", code=None)
                for end in event.ends:
                    if isinstance(end.sink, _ReadEnd | _WriteEnd):
                        end.sink.finish(self.error)
            elif type(event) is CreditAvailable:
                pass  # writers ask the core whether they may send when they wake

    # --- references --------------------------------------------------------------------------
    def _make_ref(self, kind: RefKind, end: ChannelEnd) -> ChannelRef:
        ref = _IMPORTED[kind](self, end)
        end.sink = ref
        assert isinstance(ref, ChannelRef)
        return ref

    def _export_ref(self, ref: ChannelRef) -> int:
        pending = self._pending
        if pending is None:
            raise ChannelError("channel references can only be sent inside a message")
        if not isinstance(ref, _Local) or ref._session is not self or ref._end is not None:
            raise ChannelError(f"cannot send a {type(ref).__name__} on this session")
        end = self.core.open_channel(ref.ref_kind, ref)

        def bind() -> None:
            ref._end = end
        pending.append(bind)
        return end.id
