"""Global jobs' replicas follow the nodes: one on each node placement's static checks admit,
removed from a node that is gone, drained or no longer admitted; kept on a down or paused
node (its containers are the reconciler's)."""

from __future__ import annotations

import pytest

from protocol.observed import NodeInfo, NodeResources
from protocol.specs import ContainerSpec, Platform
from scheduler.global_jobs import JOB_LABEL, plan_replicas, replica_id, replica_spec

SPEC = ContainerSpec(image="agent", constraints=["node.labels.tier!=db"])


def node(node_id: str, **fields: object) -> NodeInfo:
    given: dict[str, object] = {"id": node_id, "hostname": f"h-{node_id}", "status": "ready",
                                "platform": Platform(os="linux", arch="amd64"),
                                "capacity": NodeResources(millicpus=1000, memory=1 << 30)}
    return NodeInfo(**{**given, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(("nodes", "replicas", "create", "remove"), [
    # every eligible node takes one, a node already holding one takes none
    ([node("a"), node("b"), node("c")], {"job.a": "a"}, ["b", "c"], []),
    # constraints and platform are the job's: a db node and a Windows node take none
    ([node("a"), node("b", labels={"tier": "db"}),
      node("w", platform=Platform(os="windows", arch="amd64"))], {}, ["a"], []),
    # a node whose labels changed loses its replica; a removed node's replica goes
    ([node("a", labels={"tier": "db"})], {"job.a": "a", "job.gone": "gone"}, [],
     ["job.a", "job.gone"]),
    # drained: removed; paused or down: kept, and no new one there
    ([node("d", availability="drain"), node("p", availability="pause"),
      node("x", status="down")], {"job.d": "d", "job.p": "p", "job.x": "x"}, [], ["job.d"]),
    ([node("p", availability="pause"), node("x", status="down")], {}, [], []),
    # a node that joins later takes one
    ([node("a"), node("late")], {"job.a": "a"}, ["late"], []),
])
def test_replicas_follow_the_nodes(nodes: list[NodeInfo], replicas: dict[str, str],
                                   create: list[str], remove: list[str]) -> None:
    plan = plan_replicas("job", SPEC, nodes, replicas)
    assert (plan.create, plan.remove) == (create, remove)


def test_a_replica_is_pinned_to_its_node_and_labelled() -> None:
    spec = replica_spec("job", SPEC, "n1")
    assert spec.name == replica_id("job", "n1") == "job.n1"
    assert spec.constraints == ["node.labels.tier!=db", "node.id==n1"]
    assert spec.labels == {JOB_LABEL: "job"}
