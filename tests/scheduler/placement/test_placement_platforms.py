"""Several acceptable platforms per container (``platforms``: any one will do).

SwarmKit's TestSchedulerCompatiblePlatform cases as data (not code): docker/swarmkit,
Apache-2.0, commit 2dcf70aafdc9ea55af3aaaeca440638cde0ecda6, manager/scheduler/scheduler_test.go.
"""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument, InvalidSpec, Unsupported
from protocol.observed import NodeInfo
from protocol.platforms import host_platform
from protocol.specs import ContainerSpec
from protocol.specs import Platform as P
from protocol.validation import check_spec
from scheduler.placement import (
    Assignment,
    ClusterSnapshot,
    PlacementEngine,
    PlacementResult,
    Task,
    check_placement,
)
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.filters.platform import PlatformFilter
from scheduler.placement.request import compile_spec
from worker.service import refuse_placement_rules

# node1 linux/x86_64, node2 windows/amd64, node3 reports no platform
NODES = [
    NodeInfo(id="node1", status="ready", platform=P(os="linux", arch="x86_64")),
    NodeInfo(id="node2", status="ready", platform=P(os="windows", arch="amd64")),
    NodeInfo(id="node3", status="ready", platform=P(os="", arch="")),
]

CASES: list[tuple[str, ContainerSpec, set[str]]] = [
    ("task1: linux/amd64", ContainerSpec(image="x", platforms=[P(os="linux", arch="amd64")]),
     {"node1"}),
    ("task2: linux/arm, nowhere", ContainerSpec(image="x", platforms=[P(os="linux", arch="arm")]),
     set()),
    # SwarmKit: any node. Here no platform means Linux (Docker's default), by design.
    ("task3: no platform", ContainerSpec(image="x"), {"node1"}),
    ("task4: linux, any arch", ContainerSpec(image="x", platforms=[P(os="linux")]), {"node1"}),
    ("task5: linux/amd64 or windows/x86_64",
     ContainerSpec(image="x", platforms=[P(os="linux", arch="amd64"),
                                         P(os="windows", arch="x86_64")]),
     {"node1", "node2"}),
    # Not SwarmKit's: arm64 or amd64 (aliases folded), and one platform as a one-item list.
    ("linux/aarch64 or linux/amd64",
     ContainerSpec(image="x", platforms=[P(os="linux", arch="aarch64"),
                                         P(os="linux", arch="amd64")]), {"node1"}),
    ("windows alone, as platform", ContainerSpec(image="x", platform=P(os="windows")),
     {"node2"}),
]


@pytest.mark.parametrize(("label", "spec", "expected"), CASES, ids=[c[0] for c in CASES])
def test_platforms(label: str, spec: ContainerSpec, expected: set[str]) -> None:
    cluster = ClusterSnapshot.build(NODES)
    req = compile_spec(spec)
    cycle = PlacementCycle(cluster)
    assert {n.id for n in cluster.nodes if PlatformFilter().check(req, n, cycle) is None} \
        == expected
    for n in NODES:  # the independent checker agrees
        result = PlacementResult([Assignment("t", n.id)], [])
        assert (not check_placement(NODES, [], [Task("t", spec)], result)) == (n.id in expected)


def test_a_refusal_names_every_platform() -> None:
    spec = ContainerSpec(image="x", platforms=[P(os="linux", arch="arm"),
                                               P(os="linux", arch="s390x")])
    result = PlacementEngine(ClusterSnapshot.build(NODES)).place_job(spec, 1, "j")
    assert "platform linux/amd64 ≠ linux/arm or linux/s390x" in \
        result.refusals[0].explanation.message


def test_platform_and_platforms_together_are_refused() -> None:
    spec = ContainerSpec(image="x", platform=P(os="linux"), platforms=[P(os="windows")])
    with pytest.raises(InvalidArgument, match="platform or platforms"):
        compile_spec(spec)
    with pytest.raises(InvalidSpec, match="platform or platforms"):
        check_spec(spec)


def test_a_bad_platform_names_its_place() -> None:
    spec = ContainerSpec(image="x", platforms=[P(os="linux"), P(os="plan9")])
    with pytest.raises(InvalidArgument, match=r"platforms\[1\]\.os"):
        compile_spec(spec)


def test_a_worker_asked_directly_runs_one_of_them() -> None:
    host = host_platform()
    other = P(os="windows" if host.os != "windows" else "linux")
    refuse_placement_rules(ContainerSpec(image="x", platforms=[other, P(os=host.os)]))
    with pytest.raises(Unsupported, match="asks for"):
        refuse_placement_rules(ContainerSpec(image="x", platforms=[other]))
