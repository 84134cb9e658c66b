"""Swarm classic's rules carried in container labels (``com.docker.swarm.constraints`` and
``com.docker.swarm.affinities``, each a JSON list): they add to the spec's own rules, are
refused at submission when malformed, read by the checker, and refused by a worker asked
directly like any placement rule. ``--network container:X`` is refused with its reason."""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument, InvalidSpec, Unsupported
from protocol.observed import NodeInfo
from protocol.specs import AFFINITIES_LABEL, CONSTRAINTS_LABEL, ContainerSpec, Platform
from protocol.validation import check_spec
from scheduler.placement import (
    Assignment,
    ClusterSnapshot,
    PlacementEngine,
    PlacementResult,
    Task,
    check_placement,
)
from worker.service import refuse_placement_rules

NODES = [NodeInfo(id=f"n{i}", hostname=f"h{i}", status="ready", labels={"zone": z},
                  platform=Platform(os="linux", arch="amd64")) for i, z in enumerate("aab")]


def placed(spec: ContainerSpec, count: int = 1) -> set[str]:
    result = PlacementEngine(ClusterSnapshot.build(NODES)).place_job(spec, count, "j")
    return {a.node_id for a in result.assignments}


@pytest.mark.parametrize(("labels", "constraints", "expected"), [
    ({CONSTRAINTS_LABEL: '["zone==b"]'}, [], {"n2"}),
    ({CONSTRAINTS_LABEL: '["zone==a", "node!=h0"]'}, [], {"n1"}),
    ({CONSTRAINTS_LABEL: '["node!=h0"]'}, ["zone==a"], {"n1"}),  # both sources hold
    ({CONSTRAINTS_LABEL: "[]"}, ["zone==b"], {"n2"}),
    ({AFFINITIES_LABEL: '["container!=j*"]'}, [], {"n0", "n1", "n2"}),  # one per node
])
def test_label_rules_add_to_the_spec(labels: dict[str, str], constraints: list[str],
                                     expected: set[str]) -> None:
    spec = ContainerSpec(image="x", name="j", labels=labels, constraints=constraints)
    assert placed(spec, count=len(expected) + 1) == expected
    for n in NODES:  # the checker reads the labels too
        result = PlacementResult([Assignment("t", n.id)], [])
        ok = not check_placement(NODES, [], [Task("t", spec)], result)
        if AFFINITIES_LABEL not in labels:
            assert ok == (n.id in expected)


@pytest.mark.parametrize(("label", "why"), [
    ("zone==a", "expected a JSON list of rules"),
    ('{"zone": "a"}', "expected a JSON list of rules"),
    ("[1]", "expected a JSON list of rules"),
    ('["zone=a"]', r"labels\[com.docker.swarm.constraints\]\[0\]: no operator"),
])
def test_a_malformed_label_is_refused(label: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        placed(ContainerSpec(image="x", labels={CONSTRAINTS_LABEL: label}))


def test_a_worker_asked_directly_refuses_them() -> None:
    with pytest.raises(Unsupported, match=r"com\.docker\.swarm\.constraints"):
        refuse_placement_rules(ContainerSpec(image="x", labels={CONSTRAINTS_LABEL: '["a==b"]'}))
    refuse_placement_rules(ContainerSpec(image="x", labels={"com.example": "x"}))


@pytest.mark.parametrize(("network", "why"), [
    ("container:", "expected container:NAME"),
    ("-bad", "'-bad' is not a network name"),
])
def test_bad_networks_are_refused(network: str, why: str) -> None:
    with pytest.raises(InvalidSpec, match=why) as info:
        check_spec(ContainerSpec(image="x", network=network))
    assert info.value.field == "network"
    check_spec(ContainerSpec(image="x", network="host"))
    check_spec(ContainerSpec(image="x", network="bridge"))
