"""The engine's event feed: Docker's container events, fanned out to every subscriber.

A subscriber that does not keep up loses the oldest events rather than growing without bound;
it is told how many it missed.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator

from protocol.specs import Event, EventType

HISTORY = 1024  # events kept for ``since`` and for slow subscribers


class Subscription:
    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: collections.deque[Event] = collections.deque(maxlen=HISTORY)
        self._wake: asyncio.Event = asyncio.Event()
        self.missed = 0

    def _push(self, event: Event) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.missed += 1
        self._queue.append(event)
        self._wake.set()

    async def next(self) -> Event:
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.next()

    def close(self) -> None:
        self._hub.subscribers.discard(self)


class EventHub:
    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        self.subscribers: set[Subscription] = set()
        self.history: collections.deque[Event] = collections.deque(maxlen=HISTORY)

    def publish(self, type: EventType, action: str, id: str, **attributes: str) -> Event:
        event = Event(type=type, action=action, id=id, time=time.time(), node_id=self.node_id,
                      attributes=attributes)
        self.history.append(event)
        for subscriber in list(self.subscribers):
            subscriber._push(event)
        return event

    def subscribe(self, since: float = 0.0) -> Subscription:
        subscription = Subscription(self)
        if since:
            for event in self.history:
                if event.time >= since:
                    subscription._push(event)
        self.subscribers.add(subscription)
        return subscription
