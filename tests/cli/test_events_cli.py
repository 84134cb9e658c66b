"""``shoal events`` that fell behind: the events it got, then one line saying so, exit 1."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import channels
from protocol.errors import EventsOverflow
from protocol.eventfeed import EventFeed
from protocol.messages import EventMessage, Message, WatchEvents
from protocol.observed import Event
from tests.helpers.bounded_run import run

ROOT = Path(__file__).resolve().parents[2]


def overflow_of_a_real_feed() -> tuple[Event, EventsOverflow]:
    """The first event and the error of a subscriber that fell behind after it."""
    feed = EventFeed(history=1, queue_limit=1)
    subscription = feed.subscribe()
    first, second = (Event(type="container", action="start", id=f"c{n}", time=1000.0 + n)
                     for n in range(2))
    feed.publish(first, second)
    assert subscription.take() == first
    try:
        subscription.take()
    except EventsOverflow as exc:
        return first, exc
    raise AssertionError("the subscriber was not ended")


def test_events_that_fell_behind_end_with_one_line_and_exit_1() -> None:
    first, error = overflow_of_a_real_feed()

    async def handle(message: Message) -> Message | None:
        assert isinstance(message, WatchEvents) and isinstance(message.reply, channels.Sender)
        await message.reply.send(EventMessage(event=first))
        raise error

    async def main() -> tuple[int, str, str]:
        async with await channels.listen("tcp://127.0.0.1:0") as lst:
            server = asyncio.create_task(channels.serve(lst.receiver, handle))
            shoal = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "events", "-H", lst.address, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await shoal.communicate()
            await lst.close()
            await server
        assert shoal.returncode is not None
        return shoal.returncode, out.decode(), err.decode()

    code, out, err = run(main, timeout=60)
    assert code == 1, err
    assert out.splitlines()[0].endswith("container start c0 ()")
    assert err.splitlines() == [f"Error: EventsOverflow: {error}"]
    assert f"since={first.time + 1!r}" in err
