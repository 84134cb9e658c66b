"""Host ports, with Swarm classic's port filter cases as data.

Transcribed case by case (not code) from docker/classicswarm, Apache-2.0, commit
3cc018dc2cd0af0880330bd75bd351bbf54fde9c, scheduler/filter/port_test.go (NoConflicts, Simple,
DifferentInterfaces, ForHostMode). Classic's RandomAssignment case has no counterpart: a shoal
worker publishes no port through a network namespace, so no host port is chosen at run time;
a container binds host ports only on ``--network host``, where the port is its own.
"""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument
from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import ContainerSpec, Platform
from protocol.specs import PortMapping as P
from scheduler.placement import (
    Assignment,
    ClusterSnapshot,
    PlacementEngine,
    PlacementResult,
    Task,
    check_placement,
)
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.filters.ports import PortFilter
from scheduler.placement.request import compile_spec

NODES = [NodeInfo(id=f"node-{i}", hostname=f"node-{i}", status="ready",
                  platform=Platform(os="linux", arch="amd64"),
                  capacity=NodeResources(millicpus=1000)) for i in range(3)]


def spec(*ports: P, network: str = "none") -> ContainerSpec:
    return ContainerSpec(image="app:1", ports=list(ports), network=network)


def running(node: int, s: ContainerSpec, cid: str = "c1") -> ContainerInfo:
    return ContainerInfo(id=f"{cid}-{node}", node_id=f"node-{node}", schedule_state="running",
                         spec=s)


# (what runs where, what is asked, the nodes that can take it)
CASES: list[tuple[str, list[ContainerInfo], ContainerSpec, set[int]]] = [
    ("no ports asked", [], spec(), {0, 1, 2}),
    ("port 80, nothing running", [], spec(P(container_port=80, host_port=80)), {0, 1, 2}),
    ("another port taken", [running(0, spec(P(container_port=4242, host_port=4242)))],
     spec(P(container_port=80, host_port=80)), {0, 1, 2}),
    ("port 80 taken on node-0", [running(0, spec(P(container_port=80, host_port=80)))],
     spec(P(container_port=80, host_port=80)), {1, 2}),
    ("taken on every interface, asked on 127.0.0.1",
     [running(0, spec(P(container_port=80, host_port=80)))],
     spec(P(container_port=80, host_port=80, host_ip="127.0.0.1")), {1, 2}),
    ("taken on 127.0.0.1, asked there",
     [running(1, spec(P(container_port=4242, host_port=4242, host_ip="127.0.0.1")))],
     spec(P(container_port=4242, host_port=4242, host_ip="127.0.0.1")), {0, 2}),
    ("taken on 127.0.0.1, asked on 0.0.0.0",
     [running(1, spec(P(container_port=4242, host_port=4242, host_ip="127.0.0.1")))],
     spec(P(container_port=4242, host_port=4242, host_ip="0.0.0.0")), {0, 2}),
    ("taken on 127.0.0.1, asked on every interface",
     [running(1, spec(P(container_port=4242, host_port=4242, host_ip="127.0.0.1")))],
     spec(P(container_port=4242, host_port=4242)), {0, 2}),
    ("taken on 127.0.0.1, asked on 192.168.1.1",
     [running(1, spec(P(container_port=4242, host_port=4242, host_ip="127.0.0.1")))],
     spec(P(container_port=4242, host_port=4242, host_ip="192.168.1.1")), {0, 1, 2}),
    ("host network: port 80 taken on node-0",
     [running(0, spec(P(container_port=80), network="host"))],
     spec(P(container_port=80), network="host"), {1, 2}),
    # Not classic's cases: the two kinds of binding meet.
    ("host network takes a published port's node",
     [running(0, spec(P(container_port=8080, host_port=80, host_ip="127.0.0.1")))],
     spec(P(container_port=80), network="host"), {1, 2}),
    ("a published port clashes with a host-network container",
     [running(2, spec(P(container_port=80), network="host"))],
     spec(P(container_port=8080, host_port=80, host_ip="10.0.0.1")), {0, 1}),
    ("other protocol", [running(0, spec(P(container_port=53), network="host"))],
     spec(P(container_port=53, protocol="udp"), network="host"), {0, 1, 2}),
    ("-p 80 without host network binds nothing on the host",
     [running(0, spec(P(container_port=80)))], spec(P(container_port=80, host_port=80)),
     {0, 1, 2}),
]


@pytest.mark.parametrize(("label", "existing", "asked", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_port_filter(label: str, existing: list[ContainerInfo], asked: ContainerSpec,
                     expected: set[int]) -> None:
    cluster = ClusterSnapshot.build(NODES, existing)
    req = compile_spec(asked)
    cycle = PlacementCycle(cluster)
    assert {n.index for n in cluster.nodes
            if PortFilter().check(req, n, cycle) is None} == expected


def test_the_checker_agrees() -> None:
    for label, existing, asked, expected in CASES:
        for i, n in enumerate(NODES):
            tasks = [Task("t", asked)]
            result = PlacementResult([Assignment("t", n.id)], [])
            flagged = {v.rule for v in check_placement(NODES, existing, tasks, result)}
            assert (flagged == set()) == (i in expected), (label, n.id, flagged)


def test_a_second_host_network_container_goes_elsewhere() -> None:
    web = spec(P(container_port=80), network="host")
    engine = PlacementEngine(ClusterSnapshot.build(NODES))
    result = engine.place_job(web, 4, "web")
    assert sorted(a.node_id for a in result.assignments) == ["node-0", "node-1", "node-2"]
    [refusal] = result.refusals
    assert "3 host port 80/tcp in use" in refusal.explanation.message


def test_a_refusal_names_the_address() -> None:
    taken = [running(0, spec(P(container_port=1, host_port=4242, host_ip="127.0.0.1")))]
    engine = PlacementEngine(ClusterSnapshot.build(NODES[:1], taken))
    result = engine.place_job(spec(P(container_port=1, host_port=4242, host_ip="127.0.0.1")),
                              1, "j")
    assert "1 host port 4242/tcp on 127.0.0.1 in use" in result.refusals[0].explanation.message


@pytest.mark.parametrize(("ports", "network", "message"), [
    ([P(container_port=1, host_port=80, host_ip="localhost")], "none",
     "ports[0]: host_ip 'localhost' is not an IP address"),
    ([P(container_port=1, host_port=80), P(container_port=2, host_port=80, host_ip="::1")],
     "none", "ports[1]: host port 80/tcp is published twice"),
    ([P(container_port=80), P(container_port=8080, host_port=80)], "host",
     "ports[1]: host port 80/tcp is published twice"),
])
def test_bad_bindings_are_refused(ports: list[P], network: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_spec(spec(*ports, network=network))


def test_two_addresses_of_one_port_are_fine() -> None:
    req = compile_spec(spec(P(container_port=1, host_port=80, host_ip="127.0.0.1"),
                            P(container_port=2, host_port=80, host_ip="10.0.0.1")))
    assert req.ports == ((80, "tcp", "127.0.0.1"), (80, "tcp", "10.0.0.1"))
