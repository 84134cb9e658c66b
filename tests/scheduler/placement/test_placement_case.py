"""Case in values: a node constraint's literal or glob matches in any case, as SwarmKit compares
(strings.EqualFold); a /regex/ is matched as written and (?i) asks for any case, as in Swarm
classic; affinities (container names, images, container labels) keep their case, as in classic.

Peer cases transcribed as data (not code): docker/swarmkit, Apache-2.0, commit
2dcf70aafdc9ea55af3aaaeca440638cde0ecda6, manager/constraint/constraint_test.go (TestMatch:
literals; its f*o is a literal there, a glob here by design); docker/classicswarm, Apache-2.0,
commit 3cc018dc2cd0af0880330bd75bd351bbf54fde9c, scheduler/filter/constraint_test.go
(TestFilterRegExpCaseInsensitive).
"""

from __future__ import annotations

import pytest

from protocol.observed import ContainerInfo, NodeInfo
from protocol.specs import ContainerSpec, Platform
from scheduler.placement import Assignment, PlacementResult, Task, check_placement
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.filters.affinity import AffinityFilter
from scheduler.placement.filters.constraints import ConstraintFilter
from scheduler.placement.request import compile_spec
from scheduler.placement.snapshot import ClusterSnapshot


def node(hostname: str, **labels: str) -> NodeInfo:
    return NodeInfo(id=f"id-{hostname}", hostname=hostname, status="ready", labels=labels,
                    platform=Platform(os="linux", arch="amd64"))


@pytest.mark.parametrize(("rule", "hostnames", "expected"), [
    # SwarmKit TestMatch
    ("node.name==foo", ["foo", "fo", "fooE"], ["foo"]),
    ("node.name!=foo", ["foo", "bar", "fo", "fooExtra"], ["bar", "fo", "fooExtra"]),
    # SwarmKit's EqualFold
    ("node.hostname==FOO", ["foo", "Foo", "fo"], ["foo", "Foo"]),
    ("node.hostname!=FOO", ["foo", "Foo", "fo"], ["fo"]),
    ("node==Foo", ["foo", "bar"], ["foo"]),
    ("node.hostname==F*O", ["foo", "fxo", "bar"], ["foo", "fxo"]),
    # a regex is as written
    ("node.hostname==/^F/", ["foo", "Foo"], ["Foo"]),
])
def test_hostname_values(rule: str, hostnames: list[str], expected: list[str]) -> None:
    assert passing([rule], [node(h) for h in hostnames]) == expected


def passing(constraints: list[str], nodes: list[NodeInfo]) -> list[str]:
    cluster = ClusterSnapshot.build(nodes)
    req = compile_spec(ContainerSpec(image="app", constraints=constraints))
    cycle = PlacementCycle(cluster)
    out = [n.hostname for n in cluster.nodes
           if ConstraintFilter().check(req, n, cycle) is None]
    # the independent checker reads the same rules the same way
    for n in nodes:
        result = PlacementResult([Assignment("t", n.id)], [])
        spec = ContainerSpec(image="app", constraints=constraints)
        ok = not check_placement(nodes, [], [Task("t", spec)], result)
        assert ok == (n.hostname in out), (constraints, n.hostname)
    return out


# classic TestFilterRegExpCaseInsensitive: one node's label name is aBcDeF
LABELLED = [node("n0", name="node0"), node("n1", name="node1"), node("n3", name="aBcDeF")]


@pytest.mark.parametrize(("rule", "expected"), [
    ("name==/abcdef/", []),
    ("name==/(?i)abcdef/", ["n3"]),
    ("name!=/(?i)abc*/", ["n0", "n1"]),
    # literals and globs in any case
    ("name==abcdef", ["n3"]),
    ("node.labels.name==ABCDEF", ["n3"]),
    ("node.labels.name!=ABCdef", ["n0", "n1"]),
    ("name==ABC*", ["n3"]),
    ("node.platform.os==LINUX", ["n0", "n1", "n3"]),
])
def test_label_values(rule: str, expected: list[str]) -> None:
    assert passing([rule], LABELLED) == expected


def test_a_label_name_keeps_its_case() -> None:
    # the name is the operator's key; only the value is compared in any case
    assert passing(["node.labels.Name==abcdef"], LABELLED) == []


@pytest.mark.parametrize(("rule", "holds"), [
    ("container==web", True),
    ("container==WEB", False),
    ("label.tier==Front", True),
    ("label.tier==front", False),
    ("container.image==redis", True),
    ("container.image==Redis", False),
])
def test_affinities_keep_their_case(rule: str, holds: bool) -> None:
    running = [ContainerInfo(id="c1", name="web", node_id="id-n0", schedule_state="running",
                             spec=ContainerSpec(image="redis:7", labels={"tier": "Front"}))]
    cluster = ClusterSnapshot.build([node("n0")], running)
    req = compile_spec(ContainerSpec(image="app", affinities=[rule]))
    assert (AffinityFilter().check(req, cluster.nodes[0], PlacementCycle(cluster)) is None) \
        == holds
