"""The daemon's verbs as the front end asks them: one channels session to the daemon's
root-only local socket, opened at first use and again once it is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import channels
from protocol.errors import ChannelError, Unavailable
from protocol.messages import Message

ReplyT = TypeVar("ReplyT", bound=Message)
MakeRequest = Callable[[channels.Sender], Message]


class Verbs:
    """A client of one daemon's verbs at ``address`` (its ``ipc://`` socket)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._conn: channels.Connection | None = None
        self._lock = asyncio.Lock()

    async def _sender(self) -> channels.Sender:
        async with self._lock:
            if self._conn is not None and self._conn.error is not None:
                await self._conn.close()
                self._conn = None
            if self._conn is None:
                try:
                    self._conn = await channels.connect(self.address)
                except ChannelError as exc:
                    raise Unavailable(f"the daemon does not answer at {self.address}: "
                                      f"{exc}") from exc
            return self._conn.sender

    async def ask(self, make: MakeRequest, expected: type[ReplyT]) -> ReplyT:
        """The single reply to ``make(reply)``; a refusal is raised as its ShoalError."""
        reply = await channels.request(await self._sender(), make)
        if not isinstance(reply, expected):
            raise Unavailable(f"expected {expected.__name__}, got {type(reply).__name__}")
        return reply

    async def open(self, make: MakeRequest, capacity: int = 64) -> channels.Receiver:
        """Send ``make(reply)`` and return the reply channel to read a stream of answers
        from; the caller closes it (which tells the daemon it went away)."""
        reply_tx, reply_rx = channels.pipe(capacity=capacity)
        await (await self._sender()).send(make(reply_tx))
        return reply_rx

    async def send(self, request: Message) -> None:
        """Send a request whose reply channels the caller made and reads."""
        await (await self._sender()).send(request)

    async def open_with_progress(self, make: Callable[[channels.Sender, channels.Sender],
                                                       Message],
                                 capacity: int = 256) -> tuple[channels.Receiver,
                                                               channels.Receiver]:
        """Send ``make(progress, reply)`` (a pull's or a push's shape) and return both
        receivers; the caller closes them."""
        progress_tx, progress_rx = channels.pipe(capacity=capacity)
        reply_tx, reply_rx = channels.pipe(capacity=4)
        await (await self._sender()).send(make(progress_tx, reply_tx))
        return progress_rx, reply_rx

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
