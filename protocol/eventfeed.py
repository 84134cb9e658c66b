"""What a ``WatchEvents`` subscriber is owed, on a worker and on a scheduler alike.

An ``EventFeed`` fans events out to subscribers and keeps a short history for ``since``. The
policy for a subscriber that does not keep up is Docker's: nothing is dropped silently. Each
subscriber has a bounded queue; the event that would overflow it ends the subscription instead:
the subscriber still reads every event queued before, in order, then ``EventsOverflow``, which
names the time of the first event it did not get, to subscribe again from.

Pure: no event loop, no clock. A subscriber learns that it has something to read through its
``wake`` callback (an ``asyncio.Event.set`` in ``channels.FeedReader``); events carry their time.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping

from protocol.errors import EventsOverflow
from protocol.observed import Event

HISTORY = 1024  # recent events kept for ``since``
QUEUE_LIMIT = 10_000  # events a subscriber may lag behind before it is ended


def matches(event: Event, filters: Mapping[str, str]) -> bool:
    """Docker's event filters: type, action, id, container (a container event's id), node, or
    any attribute (``image``, ``name``, ...); every filter must hold."""
    fields = {"type": event.type, "action": event.action, "id": event.id,
              "container": event.id if event.type == "container" else "",
              "node": event.node_id}
    return all(fields.get(key, event.attributes.get(key)) == value
               for key, value in filters.items())


def _nothing() -> None:
    pass


class FeedSubscription:
    """One subscriber's queue: ``take`` the next event; ``close`` when done."""

    def __init__(self, feed: EventFeed, limit: int, wake: Callable[[], None]) -> None:
        self._feed = feed
        self._limit = limit
        self._wake = wake
        self._pending: collections.deque[Event] = collections.deque()
        self._overflow: EventsOverflow | None = None

    @property
    def ended(self) -> bool:
        """Whether the feed stopped filling this queue (it overflowed, or was closed)."""
        return self not in self._feed._subscribers

    def take(self) -> Event | None:
        """The next event, or None while there is none yet. Once the queue has overflowed and
        every event before the overflow was taken: raises ``EventsOverflow``."""
        if self._pending:
            return self._pending.popleft()
        if self._overflow is not None:
            raise self._overflow
        return None

    def close(self) -> None:
        self._feed._subscribers.pop(self, None)

    def _push(self, event: Event) -> bool:
        """Queue ``event``; False (and the subscriber is ended) when the queue is full."""
        if len(self._pending) >= self._limit:
            self._overflow = EventsOverflow(
                f"this subscriber fell {self._limit} events behind and was ended; the events "
                f"from {event.time!r} on were not sent: subscribe again with since={event.time!r}",
                details={"behind": str(self._limit), "since": repr(event.time)})
            self._wake()
            return False
        self._pending.append(event)
        if len(self._pending) == 1:
            self._wake()
        return True


class EventFeed:
    """Fans events out to subscribers and in-line listeners; keeps ``history`` for ``since``."""

    def __init__(self, *, history: int = HISTORY, queue_limit: int = QUEUE_LIMIT) -> None:
        if queue_limit < history:
            raise ValueError("a subscriber's queue must hold a whole ``since`` replay")
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._queue_limit = queue_limit
        # A dict, not a set: subscribers are served in the order they came.
        self._subscribers: dict[FeedSubscription, None] = {}
        # Called in-line on every event; they must not block, and are never ended.
        self.listeners: list[Callable[[Event], None]] = []

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def history(self) -> list[Event]:
        return list(self._history)

    def publish(self, *events: Event) -> None:
        for event in events:
            self._history.append(event)
            for listener in self.listeners:
                listener(event)
            for subscriber in list(self._subscribers):
                if not subscriber._push(event):
                    del self._subscribers[subscriber]

    def subscribe(self, since: float = 0.0,
                  wake: Callable[[], None] = _nothing) -> FeedSubscription:
        """A new subscriber; with ``since``, the kept events from that time on come first."""
        subscription = FeedSubscription(self, self._queue_limit, wake)
        if since:
            for event in self._history:
                if event.time >= since:
                    subscription._push(event)
        self._subscribers[subscription] = None
        return subscription
