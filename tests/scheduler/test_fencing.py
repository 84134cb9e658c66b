"""The cluster's fencing delay against its node timeout."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument
from scheduler.fencing import fence_delay


@pytest.mark.parametrize(("heartbeat", "node_timeout", "given", "delay"), [
    (1.0, 5.0, None, 3.0),  # the defaults: the node timeout less 2 heartbeats
    (0.2, 2.0, None, 1.6),
    (1.0, 5.0, 2.5, 2.5),
    (1.0, 5.0, 3.0, 3.0),  # exactly the margin
])
def test_accepted(heartbeat: float, node_timeout: float, given: float | None,
                  delay: float) -> None:
    assert fence_delay(heartbeat, node_timeout, given) == pytest.approx(delay)


@pytest.mark.parametrize(("heartbeat", "node_timeout", "given"), [
    (1.0, 1.5, None),  # no room for the margin at all
    (1.0, 2.0, None),  # a delay of 0 would fence at once
    (1.0, 5.0, 3.5),  # less than 2 heartbeats before the node timeout
])
def test_refused_with_one_line_saying_what_to_change(heartbeat: float, node_timeout: float,
                                                    given: float | None) -> None:
    with pytest.raises(InvalidArgument) as refused:
        fence_delay(heartbeat, node_timeout, given)
    assert "\n" not in str(refused.value) and "--node-timeout" in str(refused.value)
