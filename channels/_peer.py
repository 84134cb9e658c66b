"""The asyncio shell around one SessionCore: moves frames, wakes readers and writers, runs pumps.

Frames arrive through ``feed``; whatever the core wants sent is flushed to the transport link
right away (sends never block: credit bounds what is in flight). Channel ends the core hands us
become live objects; ends we are asked to send to the peer are either bound straight to the
session (a local Sender's inbox now fills from the peer) or bridged by a pump task (a Receiver,
or an end that belongs to another session: that is how channels cross several hops).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from channels._endpoints import (
    ByteReader,
    ByteWriter,
    Inbox,
    LocalByteWriter,
    LocalSender,
    Receiver,
    Sender,
)
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
from protocol.errors import ChannelClosed, ChannelError, EndOfChannel, PeerLost, ShoalError
from protocol.frames import SessionOptions
from protocol.limits import DEFAULT_BOUNDS, STREAM_CHUNK, PeerBounds
from protocol.messages import Message
from protocol.refs import ChannelRef, RefKind

log = structlog.get_logger("shoal.channels")


class Link(Protocol):
    """One peer as a transport sees it: ordered, non-blocking sends of multipart frames."""

    def send(self, parts: list[bytes]) -> None: ...

    def close(self) -> None: ...


class SessionStats:
    """Counts a daemon reads for its metrics, shared by the sessions of one listener (or one
    connection). Plain integers: the channels know nothing of how they are exported."""

    __slots__ = ("credit_stalls",)

    def __init__(self) -> None:
        # sends (a message, or a byte stream's chunk) that had to wait for the peer's credit
        self.credit_stalls = 0


class PeerSession:
    """One session with one peer, bound to a transport link."""

    def __init__(
        self,
        link: Link,
        *,
        dialer: bool,
        options: SessionOptions,
        timeout: float,
        root_inbox: Inbox | None = None,
        on_end: Callable[[PeerSession, ShoalError], None] | None = None,
        peer_name: str = "",
        bounds: PeerBounds = DEFAULT_BOUNDS,
        stats: SessionStats | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.stats = stats or SessionStats()
        self.link = link
        self.peer_name = peer_name
        self._root_inbox = root_inbox
        self._on_end = on_end
        self._pending: list[Callable[[], None]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.established: asyncio.Future[Established] = self._loop.create_future()
        self.error: ShoalError | None = None
        self.root: SessionSender | None = None
        self.core = SessionCore(
            dialer=dialer, options=options, make_ref=self._make_ref,
            export_ref=self._export_ref, timeout=timeout, now=self._loop.time(), bounds=bounds,
        )
        self.flush()

    # --- frames in ------------------------------------------------------------------------------
    def feed(self, parts: list[bytes]) -> None:
        core = self.core
        core.touch(self._loop.time())
        events = core.receive(parts)
        if events:
            self._handle(events)
        if core.outbox:
            self.flush()

    def tick(self) -> None:
        events = self.core.tick(self._loop.time())
        if events:
            self._handle(events)
        if self.core.outbox:
            self.flush()

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if type(event) is Delivered:
                end = event.end
                if end.sink is not None:
                    grant = end.grant
                    if grant is None:
                        grant = end.grant = self._grant(end)
                    end.sink.push(event.item, event.size, grant)
            elif type(event) is CreditAvailable:
                event.end.sink.on_credit()
            elif type(event) is Ended:
                self._end_sink(event.end, event.error)
            elif type(event) is Established:
                root = self.core.ends[ROOT_CHANNEL]
                if self.core.dialer:
                    self.root = SessionSender(self, root)
                    root.sink = self.root
                else:
                    root.sink = self._root_inbox
                if not self.established.done():
                    self.established.set_result(event)
            elif type(event) is SessionEnded:
                self._session_ended(event)

    def _grant(self, end: ChannelEnd) -> Callable[[int], None]:
        def grant(size: int) -> None:
            self.core.consumed(end, size)
            if self.core.outbox:
                self.flush()
        return grant

    def _end_sink(self, end: ChannelEnd, error: ShoalError | None) -> None:
        sink = end.sink
        if sink is None:
            return
        if isinstance(sink, Inbox):
            if end.id != ROOT_CHANNEL:
                sink.end(error)
        else:
            sink.on_end(error)

    def _session_ended(self, event: SessionEnded) -> None:
        error = event.error
        self.error = error
        lost = error if isinstance(error, ChannelError) else PeerLost(
            f"session with {self.peer_name or 'the peer'} ended: {error}", code=None)
        for end in event.ends:
            self._end_sink(end, lost)
        if not self.established.done():
            self.established.set_exception(error)
            self.established.exception()  # mark retrieved: the opener reads it or is gone
        for task in list(self.tasks):
            task.cancel()
        if self.core.outbox:
            self.flush()
        if self._on_end is not None:
            self._on_end(self, error)
        log.debug("session ended", peer=self.peer_name, error=str(error))

    # --- frames out -----------------------------------------------------------------------------
    def flush(self) -> None:
        outbox = self.core.outbox
        if not outbox:
            return
        frames = list(outbox)
        outbox.clear()
        send = self.link.send
        try:
            for frame in frames:
                send(frame)
        except ShoalError as exc:
            self.fail_transport(exc)

    def fail_transport(self, error: ShoalError) -> None:
        """The transport lost the peer: end the session without a goodbye."""
        events = self.core.drop(error)
        self._handle(events)

    def close(self, error: ShoalError | None = None) -> None:
        events = self.core.end(error)
        self.flush()
        if events:
            self._handle(events)

    def send_message(self, end: ChannelEnd, message: Message, last: bool) -> None:
        pending: list[Callable[[], None]] = []
        self._pending = pending
        try:
            self.core.send_message(end, message, last=last)
        finally:
            self._pending = None
        for activate in pending:
            activate()
        self.flush()

    # --- channel references ---------------------------------------------------------------------
    def _make_ref(self, kind: RefKind, end: ChannelEnd) -> ChannelRef:
        ref: ChannelRef
        if kind is RefKind.SENDER:
            ref = end.sink = SessionSender(self, end)
        elif kind is RefKind.BYTE_WRITER:
            ref = end.sink = SessionByteWriter(self, end)
        else:
            inbox = Inbox()
            inbox.on_cancel = self._canceller(end)
            end.sink = inbox
            ref = Receiver(inbox) if kind is RefKind.RECEIVER else ByteReader(inbox)
        return ref

    def _canceller(self, end: ChannelEnd) -> Callable[[], None]:
        def cancel() -> None:
            self.core.abort_channel(end, ChannelClosed("the receiver was closed"))
            self.flush()
        return cancel

    def _export_ref(self, ref: ChannelRef) -> int:
        pending = self._pending
        if pending is None:
            raise ChannelError("channel references can only be sent inside a message")
        if isinstance(ref, LocalSender | LocalByteWriter) and not ref.moved \
                and not ref.inbox.ended:
            # The hot path: the peer writes straight into the local reader's inbox.
            kind = RefKind.SENDER if isinstance(ref, LocalSender) else RefKind.BYTE_WRITER
            inbox = ref.inbox
            end = self.core.open_channel(kind, inbox)

            def bind() -> None:
                ref.moved = True
                inbox.on_cancel = self._canceller(end)
            pending.append(bind)
            return end.id
        if isinstance(ref, Sender | ByteWriter):
            kind = RefKind.SENDER if isinstance(ref, Sender) else RefKind.BYTE_WRITER
            inbox = Inbox()
            end = self.core.open_channel(kind, inbox)
            inbox.on_cancel = self._canceller(end)
            reader: Receiver | ByteReader = Receiver(inbox) if kind is RefKind.SENDER \
                else ByteReader(inbox)
            pending.append(lambda: self._spawn(_pump(reader, ref)))
            return end.id
        if isinstance(ref, Receiver | ByteReader):
            if ref.moved:
                raise ChannelError("this end was already sent to another process")
            kind = RefKind.RECEIVER if isinstance(ref, Receiver) else RefKind.BYTE_READER
            end = self.core.open_channel(kind, None)
            writer: SessionSender | SessionByteWriter = SessionSender(self, end) \
                if kind is RefKind.RECEIVER else SessionByteWriter(self, end)
            end.sink = writer

            def start() -> None:
                ref.moved = True
                self._spawn(_pump(_unmoved(ref), writer))
            pending.append(start)
            return end.id
        raise ChannelError(f"cannot send a {type(ref).__name__} to a peer")

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _unmoved(ref: Receiver | ByteReader) -> Receiver | ByteReader:
    """The same end, readable by the pump that now owns it."""
    return Receiver(ref.inbox) if isinstance(ref, Receiver) else ByteReader(ref.inbox)


async def _pump(source: Receiver | ByteReader, target: Sender | ByteWriter) -> None:
    """Forward everything from ``source`` to ``target``, then the end (clean or failed)."""
    try:
        while True:
            try:
                item: Any = await (source.recv() if isinstance(source, Receiver)
                                   else source.read())
            except EndOfChannel:
                target.close()
                return
            except ShoalError as exc:
                target.abort(exc)  # the source failed: pass its error on
                return
            if isinstance(source, ByteReader) and not item:
                target.close()
                return
            try:
                if isinstance(target, Sender):
                    await target.send(item)
                else:
                    await target.write(item)
            except ShoalError:
                source.close()  # the target went away: stop the source's writer too
                return
    except asyncio.CancelledError:
        target.abort(PeerLost("the session that bridged this channel ended"))
        source.close()
        raise


class _SessionWriterBase:
    """Credit waiting and end handling shared by session-bound writers."""

    __slots__ = ("_closed", "_credit", "_done", "_end", "_failed", "_peer")

    def __init__(self, peer: PeerSession, end: ChannelEnd) -> None:
        self._peer = peer
        self._end = end
        self._failed: ShoalError | None = None
        self._credit: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._done = False

    def on_credit(self) -> None:
        fut = self._credit
        if fut is not None and not fut.done():
            fut.set_result(None)

    def on_end(self, error: ShoalError | None) -> None:
        self._failed = error or ChannelClosed("the channel was closed")
        self.on_credit()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> ShoalError:
        if self._failed is None:
            if self._closed is None:
                self._closed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._closed)
        assert self._failed is not None
        return self._failed

    async def _wait_credit(self) -> None:
        can_send = self._peer.core.can_send
        if self._failed is None and not self._done and not can_send(self._end):
            self._peer.stats.credit_stalls += 1
        while self._failed is None and not self._done and not can_send(self._end):
            self._credit = asyncio.get_running_loop().create_future()
            await self._credit
        self._check()

    def _check(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._done:
            raise ChannelClosed("send on a closed channel")

    def _finish(self, error: ShoalError | None) -> None:
        if self._done or self._failed is not None:
            return
        core = self._peer.core
        if error is None:
            core.close_channel(self._end)
        else:
            core.abort_channel(self._end, error)
        self._peer.flush()
        self._closed_here()

    def _closed_here(self) -> None:
        self._done = True
        self.on_end(ChannelClosed("send on a channel this side closed"))


class SessionSender(_SessionWriterBase, Sender):
    """Sends messages on a session channel, waiting for credit when the reader is behind."""

    __slots__ = ()

    async def send(self, message: Message, *, last: bool = False) -> None:
        if self._failed is not None or self._done or not self._peer.core.can_send(self._end):
            await self._wait_credit()
        self._peer.send_message(self._end, message, last)
        if last:
            self._closed_here()

    def close(self) -> None:
        self._finish(None)

    def abort(self, error: ShoalError) -> None:
        self._finish(error)


class SessionByteWriter(_SessionWriterBase, ByteWriter):
    """Writes a byte stream on a session channel in chunks, waiting for credit."""

    __slots__ = ()

    async def write(self, data: bytes) -> None:
        core = self._peer.core
        size = min(STREAM_CHUNK, core.max_chunk)
        view = memoryview(data)
        for start in range(0, len(view), size):
            if self._failed is not None or self._done or not core.can_send(self._end):
                await self._wait_credit()
            chunk = data if size >= len(view) else bytes(view[start:start + size])
            core.send_chunk(self._end, chunk)
            self._peer.flush()

    def close(self) -> None:
        self._finish(None)

    def abort(self, error: ShoalError) -> None:
        self._finish(error)
