"""``--network container:NAME`` in placement: the container lands on NAME's node (a hard
rule, as links are), refusals say so, an app places the two together, and the independent
checker flags a joined container placed elsewhere."""

from __future__ import annotations

from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import AppSpec, ContainerSpec, Platform, Resources
from scheduler.placement import (
    ClusterSnapshot,
    EngineOptions,
    PlacementEngine,
    Task,
    check_placement,
)
from scheduler.placement.results import Assignment, PlacementResult

GiB = 1 << 30


def nodes(n: int, mem: int = 8 * GiB) -> list[NodeInfo]:
    return [NodeInfo(id=f"n{i}", hostname=f"h{i}", status="ready",
                     platform=Platform(os="linux", arch="amd64"),
                     capacity=NodeResources(millicpus=4000, memory=mem, pids=1000))
            for i in range(n)]


def running(name: str, node: str, memory: int = 0) -> ContainerInfo:
    return ContainerInfo(id=name, name=name, node_id=node, schedule_state="running",
                         spec=ContainerSpec(image="web", name=name,
                                            resources=Resources(memory=memory)))


def engine(infos: list[NodeInfo], existing: list[ContainerInfo]) -> PlacementEngine:
    return PlacementEngine(ClusterSnapshot.build(infos, existing), EngineOptions())


JOINED = ContainerSpec(image="sidecar", network="container:web")


def test_a_joined_container_lands_on_its_peers_node() -> None:
    infos = nodes(5)
    existing = [running("web", "n3")]
    tasks = [Task(f"side.{i}", JOINED) for i in range(1, 5)]
    result = engine(infos, existing).place_batch(tasks)
    assert {a.node_id for a in result.assignments} == {"n3"}
    assert check_placement(infos, existing, tasks, result) == []


def test_a_peer_that_runs_nowhere_or_a_full_node_is_explained() -> None:
    nowhere = engine(nodes(3), []).place_batch([Task("side", JOINED)])
    assert not nowhere.assignments
    assert "container web, whose network it joins, is not running anywhere" in \
        nowhere.refusals[0].explanation.message
    full = engine(nodes(3, mem=2 * GiB), [running("web", "n1", memory=2 * GiB)]).place_batch(
        [Task("side", ContainerSpec(image="sidecar", network="container:web",
                                    resources=Resources(memory=1 * GiB)))])
    assert not full.assignments
    message = full.refusals[0].explanation.message
    assert "container web, whose network it joins, runs elsewhere" in message, message


def test_an_app_places_the_joined_container_with_its_peer() -> None:
    web = ContainerSpec(image="web", name="web", resources=Resources(memory=5 * GiB))
    side = ContainerSpec(image="sidecar", name="side", network="container:web",
                         resources=Resources(memory=2 * GiB))
    result = engine(nodes(2), []).place_app(AppSpec(name="shop", containers=[side, web]))
    assert len(result.assignments) == 2
    assert len({a.node_id for a in result.assignments}) == 1


def test_the_checker_flags_a_joined_container_placed_elsewhere() -> None:
    infos = nodes(2)
    existing = [running("web", "n0")]
    task = Task("side", JOINED)
    wrong = PlacementResult(assignments=[Assignment(task_id="side", node_id="n1")])
    violations = check_placement(infos, existing, [task], wrong)
    assert [v.rule for v in violations] == ["links"]
    assert "web is on n0" in violations[0].detail
