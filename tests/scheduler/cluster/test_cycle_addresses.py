"""Which staged records keep their overlay addresses (pure): a container keeps them while it
holds its node and while it is orphaned there (its node went silent; it may still run with
them), and gives them up when it leaves the node (rescheduled, stopped, removed)."""

from __future__ import annotations

import msgspec
import pytest

from protocol.specs import ContainerSpec
from scheduler.cluster.cycle import LeaderCycle
from scheduler.cluster.tx import Entry
from scheduler.store import ContainerRecord

HELD = ContainerRecord(spec=ContainerSpec(image="busybox"), schedule_state="running",
                       node_id="a", addresses={"ov1": "10.0.0.2", "ov2": "10.0.1.3"})


@pytest.mark.parametrize(("change", "kept"), [
    ({"schedule_state": "accepted"}, True),
    ({"schedule_state": "orphaned"}, True),
    ({"schedule_state": "pending", "node_id": ""}, False),  # rescheduled
    ({"schedule_state": "exited", "desired": "stopped"}, False),
    ({"schedule_state": "removed", "desired": "removed"}, False),
])
def test_addresses_stay_while_the_container_holds_its_node(change: dict[str, str],
                                                           kept: bool) -> None:
    cycle = LeaderCycle.over(0.0, {"c": Entry(HELD, 1)}, {})
    cycle.put_container("c", msgspec.structs.replace(HELD, **change))
    staged = cycle.containers.get("c")
    assert staged is not None
    assert staged.addresses == (HELD.addresses if kept else {})
