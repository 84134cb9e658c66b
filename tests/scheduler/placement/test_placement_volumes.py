"""A container that names a volume some node holds is placed on that node, or refused with
the reason counted; a volume no node holds yet places nowhere in particular."""

from __future__ import annotations

import pytest

from protocol.observed import NodeInfo, NodeResources
from protocol.specs import ContainerSpec, Mount, Platform, Resources, VolumeInfo, VolumeSpec
from scheduler.placement import ClusterSnapshot, EngineOptions, PlacementEngine, Task
from scheduler.placement.checker import check_placement

GiB = 1 << 30


def node(name: str, volumes: list[str], *, mem: int = 8 * GiB) -> NodeInfo:
    return NodeInfo(id=name, hostname=name, status="ready",
                    platform=Platform(os="linux", arch="amd64"),
                    capacity=NodeResources(millicpus=4000, memory=mem, pids=1000),
                    volumes=[VolumeInfo(spec=VolumeSpec(name=v), node_id=name)
                             for v in volumes])


def with_volume(*names: str, memory: int = 0) -> ContainerSpec:
    return ContainerSpec(image="busybox", resources=Resources(memory=memory),
                         mounts=[Mount(type="volume", source=n, target=f"/{n}")
                                 for n in names])


def place(nodes: list[NodeInfo], spec: ContainerSpec, seed: int = 0):  # type: ignore[no-untyped-def]
    engine = PlacementEngine(ClusterSnapshot.build(nodes), EngineOptions(seed=seed))
    tasks = [Task("t1", spec)]
    result = engine.place_batch(tasks)
    assert check_placement(nodes, [], tasks, result) == []
    return result


@pytest.mark.parametrize("holder", [0, 1, 3])
def test_a_volume_pins_its_container_to_its_node(holder: int) -> None:
    nodes = [node(f"n{i}", ["data"] if i == holder else ["other"]) for i in range(4)]
    for seed in range(6):
        result = place(nodes, with_volume("data"), seed)
        assert [a.node_id for a in result.assignments] == [f"n{holder}"]


def test_a_volume_no_node_holds_goes_anywhere() -> None:
    nodes = [node(f"n{i}", []) for i in range(3)]
    chosen = {place(nodes, with_volume("new"), seed).assignments[0].node_id
              for seed in range(12)}
    assert len(chosen) > 1


def test_a_volume_on_several_nodes_takes_any_of_them() -> None:
    nodes = [node("a", ["data"]), node("b", []), node("c", ["data"])]
    for seed in range(6):
        assert place(nodes, with_volume("data"), seed).assignments[0].node_id in ("a", "c")


def test_the_refusal_counts_the_volume_reason() -> None:
    nodes = [node("n0", ["data"], mem=1 * GiB), node("n1", []), node("n2", [])]
    result = place(nodes, with_volume("data", memory=2 * GiB))
    assert result.assignments == []
    text = str(result.refusals[0].explanation)
    assert "0/3 nodes" in text
    assert "2 volume data is on n0" in text
    assert "1 insufficient memory" in text


def test_two_volumes_on_two_nodes_cannot_meet() -> None:
    nodes = [node("n0", ["a"]), node("n1", ["b"])]
    result = place(nodes, with_volume("a", "b"))
    text = str(result.refusals[0].explanation)
    assert "1 volume a is on n0" in text and "1 volume b is on n1" in text
