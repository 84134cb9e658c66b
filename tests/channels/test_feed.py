"""Serving ``WatchEvents`` from an event feed over a real connection (every transport)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import channels
from protocol.errors import EventsOverflow
from protocol.eventfeed import EventFeed
from protocol.messages import EventMessage, Message, WatchEvents
from protocol.observed import Event
from tests.helpers.bounded_run import run
from tests.helpers.channel_testing import FAST, assert_only_current_task

Address = Callable[[], str]


def ev(n: int) -> Event:
    return Event(type="container", action="start" if n % 2 else "die", id=f"c{n}",
                 time=1000.0 + n)


def feed_service(feed: EventFeed) -> channels._serve.Handler:
    async def handle(message: Message) -> Message | None:
        assert isinstance(message, WatchEvents) and isinstance(message.reply, channels.Sender)
        await channels.stream_events(feed, message.reply, message.since, message.filters)
        return None

    return handle


async def watch(conn: channels.Connection, since: float,
                filters: dict[str, str] | None = None) -> channels.Receiver:
    reply_tx, reply_rx = channels.pipe()
    await conn.sender.send(WatchEvents(since=since, filters=filters or {}, reply=reply_tx))
    return reply_rx


async def next_event(events: channels.Receiver) -> Event:
    message = await events.recv()
    assert isinstance(message, EventMessage)
    return message.event


def test_a_reading_subscriber_gets_every_matching_event_in_order(address: Address) -> None:
    async def main() -> None:
        feed = EventFeed()
        feed.publish(ev(0))
        async with await channels.listen(address(), FAST) as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, feed_service(feed)))
            async with await channels.connect(lst.address, FAST) as conn:
                everything = await watch(conn, since=ev(0).time)
                starts = await watch(conn, since=ev(0).time, filters={"action": "start"})
                assert await next_event(everything) == ev(0)  # replayed: it is subscribed
                feed.publish(*[ev(n) for n in range(1, 3000)])  # a burst, far over a window
                assert [await next_event(everything) for _ in range(1, 3000)] \
                    == [ev(n) for n in range(1, 3000)]
                assert [await next_event(starts) for _ in range(1500)] \
                    == [ev(n) for n in range(1, 3000, 2)]
                everything.close()
                starts.close()
            await lst.close()
            await server
        assert feed.subscribers == 0  # a caller that went away is unsubscribed
        assert_only_current_task()

    run(main)


def test_a_subscriber_that_does_not_read_is_ended_and_loses_nothing_silently(
        address: Address) -> None:
    async def main() -> None:
        feed = EventFeed(history=8, queue_limit=8)
        feed.publish(ev(0))
        async with await channels.listen(address(), FAST) as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, feed_service(feed)))
            async with await channels.connect(lst.address, FAST) as conn:
                events = await watch(conn, since=ev(0).time)
                assert await next_event(events) == ev(0)
                published = [ev(n) for n in range(1, 2000)]
                feed.publish(*published)  # it reads nothing meanwhile
                assert feed.subscribers == 0  # ended at once: the feed holds no more for it
                got: list[Event] = []

                async def read_all() -> None:
                    while True:
                        got.append(await next_event(events))

                with pytest.raises(EventsOverflow) as info:
                    await read_all()
                # Everything it got is what was published, in order, up to a point; the error
                # names the first event it did not get, and ``since`` from there resumes.
                assert got == published[:len(got)]
                assert info.value.details["since"] == repr(published[len(got)].time)
                again = await watch(conn, since=float(info.value.details["since"]))
                resumed = [await next_event(again) for _ in range(8)]
                assert resumed == published[-8:]  # what the history still holds
                again.close()
            await lst.close()
            await server
        assert_only_current_task()

    run(main)
