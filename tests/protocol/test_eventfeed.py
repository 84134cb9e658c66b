"""The event feed's one policy for every subscriber, tested without an event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import EventsOverflow, LimitExceeded, error_from_info
from protocol.eventfeed import EventFeed, FeedSubscription, matches
from protocol.observed import Event


def ev(n: int, **attributes: str) -> Event:
    return Event(type="container", action="start", id=f"c{n}", time=1000.0 + n,
                 attributes=attributes)


def drain(subscription: FeedSubscription, into: list[Event] | None = None) -> list[Event]:
    """Take what is there (into ``into``, which keeps what came before an overflow)."""
    out = [] if into is None else into
    while (event := subscription.take()) is not None:
        out.append(event)
    return out


def test_a_reading_subscriber_gets_every_event_in_order() -> None:
    feed = EventFeed(history=4, queue_limit=4)
    sub = feed.subscribe()
    got: list[Event] = []
    for n in range(100):
        feed.publish(ev(n))
        got += drain(sub)
    assert got == [ev(n) for n in range(100)]
    assert not sub.ended


def test_a_subscriber_that_does_not_read_is_ended_and_told_what_it_missed() -> None:
    feed = EventFeed(history=3, queue_limit=3)
    wakes: list[int] = []
    slow = feed.subscribe(wake=lambda: wakes.append(1))
    fast = feed.subscribe()
    for n in range(10):
        feed.publish(ev(n))
        drain(fast)
    assert slow.ended and feed.subscribers == 1
    # What was queued before the overflow still arrives, in order; then the typed error.
    got: list[Event] = []
    with pytest.raises(EventsOverflow) as info:
        drain(slow, got)
    assert got == [ev(0), ev(1), ev(2)]
    assert info.value.details == {"behind": "3", "since": repr(ev(3).time)}
    assert "since=1003.0" in str(info.value)
    assert wakes == [1, 1]  # once for the first event, once for the overflow
    with pytest.raises(EventsOverflow):
        slow.take()  # it stays ended
    # Subscribing again from the time it names replays what the history still holds.
    again = feed.subscribe(since=float(info.value.details["since"]))
    assert drain(again) == [ev(7), ev(8), ev(9)]


def test_the_error_crosses_the_wire_as_itself_and_old_peers_see_a_limit() -> None:
    error = EventsOverflow("fell behind", details={"since": "1.5"})
    back = error_from_info(error.to_info())
    assert type(back) is EventsOverflow and back.details == {"since": "1.5"}
    assert isinstance(back, LimitExceeded)


def test_since_replays_the_kept_events_from_that_time_then_live_ones() -> None:
    feed = EventFeed(history=5, queue_limit=5)
    for n in range(8):
        feed.publish(ev(n))
    assert drain(feed.subscribe(since=1005.0)) == [ev(5), ev(6), ev(7)]
    assert drain(feed.subscribe(since=1.0)) == [ev(n) for n in range(3, 8)]  # what is kept
    sub = feed.subscribe()  # no since: only what comes next
    assert drain(sub) == []
    feed.publish(ev(8))
    assert drain(sub) == [ev(8)]


def test_listeners_see_every_event_and_are_never_ended() -> None:
    feed = EventFeed(history=1, queue_limit=1)
    seen: list[Event] = []
    feed.listeners.append(seen.append)
    feed.publish(*[ev(n) for n in range(5)])
    assert seen == [ev(n) for n in range(5)]


def test_a_closed_subscriber_gets_nothing_more() -> None:
    feed = EventFeed()
    sub = feed.subscribe()
    sub.close()
    feed.publish(ev(1))
    assert sub.ended and sub.take() is None and feed.subscribers == 0


def test_a_queue_must_hold_a_whole_replay() -> None:
    with pytest.raises(ValueError, match="whole ``since`` replay"):
        EventFeed(history=10, queue_limit=5)


@given(st.lists(st.sampled_from(["read", "publish"]), max_size=60),
       st.integers(min_value=1, max_value=5))
def test_nothing_is_ever_lost_silently(steps: list[str], limit: int) -> None:
    """Whatever the interleaving: a subscriber receives a prefix of what was published, in
    order, and if that prefix is not everything it is told so, naming the first one missed."""
    feed = EventFeed(history=limit, queue_limit=limit)
    sub = feed.subscribe()
    published: list[Event] = []
    got: list[Event] = []
    overflow: EventsOverflow | None = None
    for step in [*steps, "read"]:
        if step == "publish":
            published.append(ev(len(published)))
            feed.publish(published[-1])
        elif overflow is None:
            try:
                drain(sub, got)
            except EventsOverflow as exc:
                overflow = exc
    assert got == published[:len(got)]
    if overflow is None:
        assert got == published
    else:
        assert overflow.details["since"] == repr(published[len(got)].time)


@pytest.mark.parametrize(("filters", "want"), [
    ({}, True),
    ({"type": "container"}, True),
    ({"type": "image"}, False),
    ({"action": "start", "id": "c1"}, True),
    ({"container": "c1"}, True),
    ({"node": "n1"}, True),
    ({"node": "n2"}, False),
    ({"image": "busybox"}, True),
    ({"image": "alpine"}, False),
    ({"name": "web"}, False),  # an attribute the event lacks never matches
])
def test_filters(filters: dict[str, str], want: bool) -> None:
    event = Event(type="container", action="start", id="c1", time=1.0, node_id="n1",
                  attributes={"image": "busybox"})
    assert matches(event, filters) is want
