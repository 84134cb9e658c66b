"""Waiting on a cluster the way a client would: on the leading scheduler's event stream.

``until(check)`` looks at the cluster, and while the answer is no, waits for the next event
(a container placed, started, exited, rescheduled; a node up or down) before looking again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

import channels
from protocol.messages import EventMessage, WatchEvents
from protocol.observed import Event
from tests.helpers import cluster_keys


class ClusterEvents:
    def __init__(self, address: str) -> None:
        self.address = address
        self._conn: channels.Connection | None = None
        self._events: channels.Receiver | None = None
        self.seen: list[Event] = []  # every event ``until`` has read, oldest first

    async def __aenter__(self) -> ClusterEvents:
        self._conn = await cluster_keys.connect(self.address)
        tx, rx = channels.pipe(capacity=65536)
        await self._conn.sender.send(WatchEvents(reply=tx))
        self._events = rx
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._events is not None:
            self._events.close()
        if self._conn is not None:
            await self._conn.close()

    async def until(self, check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
        assert self._events is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await check():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"condition not reached within {timeout:g} s")
            try:
                event = await asyncio.wait_for(self._events.recv(), remaining)
            except TimeoutError:
                raise AssertionError(f"condition not reached within {timeout:g} s") from None
            assert isinstance(event, EventMessage), event
            self.seen.append(event.event)
