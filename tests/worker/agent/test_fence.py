"""When a cut-off worker kills its exclusive containers: the clock is injected."""

from __future__ import annotations

import pytest

from worker.agent.fence import ContactFence


def test_a_worker_that_never_joined_or_was_told_zero_never_fences() -> None:
    assert not ContactFence().due(1e9)
    never = ContactFence(fence_after=0.0)
    never.acknowledged(10.0)
    assert never.deadline() is None and not never.due(1e9)


@pytest.mark.parametrize(("acks", "now", "due"), [
    ([10.0], 13.9, False),
    ([10.0], 14.0, True),  # fence_after 4 s after the acknowledged heartbeat was sent
    ([10.0, 12.0], 15.0, False),
    ([12.0, 10.0], 15.0, False),  # a late ack of an older heartbeat moves nothing back
    ([12.0, 10.0], 16.0, True),
])
def test_the_deadline_counts_from_the_newest_acknowledged_send(acks: list[float], now: float,
                                                               due: bool) -> None:
    fence = ContactFence(fence_after=4.0)
    for sent_at in acks:
        fence.acknowledged(sent_at)
    assert fence.due(now) is due
    assert fence.deadline() == max(acks) + 4.0


def test_the_reason_says_how_long_it_was_cut_off() -> None:
    fence = ContactFence(fence_after=4.0)
    fence.acknowledged(10.0)
    assert fence.reason(14.04) == "fenced: cut off from every manager for 4.0 s"
