"""Channel ends as live objects: Sender, Receiver, ByteWriter, ByteReader, and in-process pipes.

A Receiver or ByteReader reads from an ``Inbox``, which a local writer or a session fills. A
Sender or ByteWriter is either local (it fills a paired Inbox directly) or bound to a session
channel (``channels._peer``). Local pipes are bounded, so a slow reader stalls its writer just as
credit does on a session.
"""

from __future__ import annotations

import abc
import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Any

from protocol.errors import ChannelClosed, ChannelError, EndOfChannel, ShoalError
from protocol.limits import STREAM_CHUNK
from protocol.messages import Message
from protocol.refs import ByteReaderRef, ByteWriterRef, ReceiverRef, SenderRef

Grant = Callable[[int], None]


class Inbox:
    """Items waiting to be read from one channel (or, for a listener, from many)."""

    __slots__ = ("_ended_waiters", "_error", "_items", "_space", "_waiter", "buffered",
                 "capacity", "ended", "on_cancel")

    def __init__(self, capacity: int = 0) -> None:
        self._items: collections.deque[tuple[Any, int, Grant | None]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._error: ShoalError | None = None
        self.ended = False
        self.capacity = capacity  # local pipes: how much may wait unread; 0 = bounded elsewhere
        self.buffered = 0
        self.on_cancel: Callable[[], None] | None = None
        self._ended_waiters: list[asyncio.Future[None]] = []

    # writer side
    def push(self, item: Any, size: int, grant: Grant | None = None) -> None:
        if self.ended:
            if grant is not None:
                grant(size)  # keep the peer's credit flowing for items nobody will read
            return
        self._items.append((item, size, grant))
        self.buffered += size
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, error: ShoalError | None) -> None:
        if self.ended:
            return
        self.ended = True
        self._error = error
        for fut in (self._waiter, self._space, *self._ended_waiters):
            if fut is not None and not fut.done():
                fut.set_result(None)
        self._ended_waiters.clear()

    async def wait_ended(self) -> ShoalError | None:
        """Wait until the channel ends; returns its error (None for a clean close)."""
        if not self.ended:
            fut = asyncio.get_running_loop().create_future()
            self._ended_waiters.append(fut)
            await fut
        return self._error

    @property
    def cancelled(self) -> bool:
        """The reader went away (or the channel failed) and nothing more will be read."""
        return self.ended and not self._items

    async def wait_space(self) -> None:
        while not self.ended and self.capacity and self.buffered >= self.capacity:
            self._space = asyncio.get_running_loop().create_future()
            await self._space

    # reader side
    def take_nowait(self) -> Any | None:
        if not self._items:
            return None
        item, size, grant = self._items.popleft()
        self.buffered -= size
        if grant is not None:
            grant(size)
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)
        return item

    async def take(self) -> Any:
        while not self._items:
            if self.ended:
                raise self._error if self._error is not None else EndOfChannel(
                    "the channel was closed by its sender")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take_nowait()

    def cancel(self, error: ShoalError | None = None) -> None:
        """The reader stops: drop what is buffered (granting it back) and tell the writer."""
        while self._items:
            self.take_nowait()
        if not self.ended:
            self.end(error or ChannelClosed("the receiver was closed"))
            if self.on_cancel is not None:
                self.on_cancel()


class Receiver(ReceiverRef):
    """The reading end of a channel of messages."""

    __slots__ = ("_inbox", "moved")

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self.moved = False

    async def recv(self) -> Message:
        """The next message: EndOfChannel after a clean close, the peer's error after an abort."""
        self._check()
        item: Message = await self._inbox.take()
        return item

    def recv_nowait(self) -> Message | None:
        self._check()
        item: Message | None = self._inbox.take_nowait()
        return item

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.recv()
            except EndOfChannel:
                return

    def close(self) -> None:
        """Stop reading; the sender's next send fails with ChannelClosed."""
        self._inbox.cancel()

    def _check(self) -> None:
        if self.moved:
            raise ChannelError("this receiver was sent to another process")

    @property
    def inbox(self) -> Inbox:
        return self._inbox


class Sender(SenderRef, abc.ABC):
    """The writing end of a channel of messages."""

    __slots__ = ()

    @abc.abstractmethod
    async def send(self, message: Message, *, last: bool = False) -> None:
        """Send ``message``; with ``last`` the channel closes after it (one frame, not two)."""

    @abc.abstractmethod
    def close(self) -> None:
        """No more messages: the receiver ends its iteration."""

    @abc.abstractmethod
    def abort(self, error: ShoalError) -> None:
        """Fail the channel: the receiver's next recv raises ``error``."""

    @abc.abstractmethod
    async def wait_closed(self) -> ShoalError:
        """Wait until the receiver is gone (closed, or its process lost); returns why."""


class _LocalWriter:
    """What a local Sender and a local ByteWriter share: an Inbox to fill, closing, moving."""

    __slots__ = ("_closed", "_inbox", "moved")

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._closed = False
        self.moved = False

    def close(self) -> None:
        if not self._closed and not self.moved:
            self._closed = True
            self._inbox.end(None)

    def abort(self, error: ShoalError) -> None:
        if not self._closed and not self.moved:
            self._closed = True
            self._inbox.end(error)

    def _check(self) -> None:
        if self.moved:
            raise ChannelError("this end was sent to another process")
        if self._closed:
            raise ChannelClosed("write on a closed channel")
        if self._inbox.ended:
            raise ChannelClosed("the receiver was closed")

    @property
    def inbox(self) -> Inbox:
        return self._inbox


class LocalSender(_LocalWriter, Sender):
    """Sends into an Inbox in this process; no encoding happens."""

    __slots__ = ()

    async def send(self, message: Message, *, last: bool = False) -> None:
        self._check()
        inbox = self._inbox
        if inbox.capacity and inbox.buffered >= inbox.capacity:
            await inbox.wait_space()
        self._check()
        inbox.push(message, 1)
        if last:
            self.close()

    async def wait_closed(self) -> ShoalError:
        await self._inbox.wait_ended()
        return ChannelClosed("the receiver was closed")


class ByteReader(ByteReaderRef):
    """The reading end of a byte stream."""

    __slots__ = ("_inbox", "_pending", "moved")

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._pending = b""
        self.moved = False

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (a whole chunk when ``n`` < 0); ``b""`` at the end of the stream."""
        if self.moved:
            raise ChannelError("this reader was sent to another process")
        if not self._pending:
            try:
                self._pending = await self._inbox.take()
            except EndOfChannel:
                return b""
        data = self._pending
        if 0 <= n < len(data):
            self._pending = data[n:]
            return data[:n]
        self._pending = b""
        return data

    async def readexactly(self, n: int) -> bytes:
        parts = []
        while n > 0:
            chunk = await self.read(n)
            if not chunk:
                raise EndOfChannel(f"the stream ended {n} bytes early")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    async def read_all(self, limit: int = 1 << 30) -> bytes:
        parts = []
        total = 0
        while chunk := await self.read():
            total += len(chunk)
            if total > limit:
                raise ChannelError(f"stream longer than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    def close(self) -> None:
        self._pending = b""
        self._inbox.cancel()

    @property
    def inbox(self) -> Inbox:
        return self._inbox


class ByteWriter(ByteWriterRef, abc.ABC):
    """The writing end of a byte stream."""

    __slots__ = ()

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Write all of ``data``, waiting while the reader is behind."""

    @abc.abstractmethod
    def close(self) -> None:
        """End the stream: the reader gets the rest, then ``b""``."""

    @abc.abstractmethod
    def abort(self, error: ShoalError) -> None:
        """Fail the stream: the reader's next read raises ``error``."""


class LocalByteWriter(_LocalWriter, ByteWriter):
    """Writes into an Inbox in this process, bounded in bytes."""

    __slots__ = ()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), STREAM_CHUNK):
            self._check()
            inbox = self._inbox
            if inbox.buffered >= inbox.capacity:
                await inbox.wait_space()
                self._check()
            chunk = bytes(view[start:start + STREAM_CHUNK])
            inbox.push(chunk, len(chunk))


def pipe(capacity: int = 256) -> tuple[LocalSender, Receiver]:
    """A channel in this process; up to ``capacity`` messages wait unread before send waits."""
    inbox = Inbox(capacity)
    return LocalSender(inbox), Receiver(inbox)


def byte_pipe(capacity: int = 1 << 20) -> tuple[LocalByteWriter, ByteReader]:
    """A byte stream in this process; up to ``capacity`` bytes wait unread before write waits."""
    inbox = Inbox(capacity)
    return LocalByteWriter(inbox), ByteReader(inbox)
