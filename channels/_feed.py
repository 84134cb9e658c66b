"""The asyncio shell of ``protocol.eventfeed``: awaiting a subscription's events, and serving
``WatchEvents`` from a feed onto the request's reply Sender (workers and schedulers alike)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from channels._endpoints import Sender
from protocol.errors import ChannelError, EventsOverflow
from protocol.eventfeed import EventFeed, matches
from protocol.messages import EventMessage
from protocol.observed import Event


class FeedReader:
    """One subscription to ``feed``, awaited: ``await next()`` or ``async for``; raises
    ``EventsOverflow`` after the last event it got if it fell behind. Close it when done."""

    def __init__(self, feed: EventFeed, since: float = 0.0) -> None:
        self._ready = asyncio.Event()
        self._subscription = feed.subscribe(since, wake=self._ready.set)

    def take(self) -> Event | None:
        """The next event without waiting: None while there is none yet."""
        return self._subscription.take()

    async def next(self) -> Event:
        while True:
            event = self._subscription.take()
            if event is not None:
                return event
            self._ready.clear()
            await self._ready.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.next()

    def close(self) -> None:
        self._subscription.close()

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def stream_events(feed: EventFeed, reply: Sender, since: float,
                        filters: Mapping[str, str]) -> None:
    """Serve one ``WatchEvents``: send the matching events on ``reply`` in order until the
    caller closes it; a caller that fell behind gets ``EventsOverflow`` as the stream's end."""
    with FeedReader(feed, since) as reader:
        gone = asyncio.ensure_future(reply.wait_closed())
        waiting: asyncio.Future[Event] | None = None
        try:
            while True:
                event = reader.take()
                if event is None:
                    waiting = asyncio.ensure_future(reader.next())
                    await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
                    if not waiting.done():
                        return  # the caller went away
                    event = waiting.result()
                if matches(event, filters):
                    await reply.send(EventMessage(event=event))
        except EventsOverflow as exc:
            reply.abort(exc)
        except ChannelError:
            return
        finally:
            gone.cancel()
            if waiting is not None:
                waiting.cancel()
