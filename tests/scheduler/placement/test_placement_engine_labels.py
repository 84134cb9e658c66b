"""``engine.labels.<name>``: the labels a worker declared at start, whatever an operator sets or
removes since (``node.labels``), as SwarmKit keeps engine labels apart from node labels."""

from __future__ import annotations

import pytest

from protocol.observed import NodeInfo
from protocol.specs import ContainerSpec, Platform
from scheduler.placement import Assignment, PlacementResult, Task, check_placement
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.filters.constraints import ConstraintFilter
from scheduler.placement.request import compile_spec
from scheduler.placement.snapshot import ClusterSnapshot

# n1 declared storage=ssd and an operator changed it to hdd; n2 declared nothing and an operator
# set storage=ssd; n3 declared storage=ssd and nobody changed it.
NODES = [
    NodeInfo(id="n1", status="ready", platform=Platform(os="linux", arch="amd64"),
             labels={"storage": "hdd"}, engine_labels={"storage": "ssd"}),
    NodeInfo(id="n2", status="ready", platform=Platform(os="linux", arch="amd64"),
             labels={"storage": "ssd"}),
    NodeInfo(id="n3", status="ready", platform=Platform(os="linux", arch="amd64"),
             labels={"storage": "ssd"}, engine_labels={"storage": "ssd"}),
]


@pytest.mark.parametrize(("rule", "expected"), [
    ("engine.labels.storage==ssd", {"n1", "n3"}),
    ("engine.labels.storage==SSD", {"n1", "n3"}),  # values in any case
    ("engine.labels.storage!=ssd", {"n2"}),
    ("node.labels.storage==ssd", {"n2", "n3"}),
    ("storage==ssd", {"n2", "n3"}),  # a bare key is a node label, as in classic
    ("engine.labels.missing==x", set()),
])
def test_engine_labels(rule: str, expected: set[str]) -> None:
    cluster = ClusterSnapshot.build(NODES)
    spec = ContainerSpec(image="x", constraints=[rule])
    req = compile_spec(spec)
    cycle = PlacementCycle(cluster)
    assert {n.id for n in cluster.nodes
            if ConstraintFilter().check(req, n, cycle) is None} == expected
    for n in NODES:  # the independent checker agrees
        result = PlacementResult([Assignment("t", n.id)], [])
        assert (not check_placement(NODES, [], [Task("t", spec)], result)) == (n.id in expected)
