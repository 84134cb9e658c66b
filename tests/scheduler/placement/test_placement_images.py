"""Ties go to nodes that already store the image (no fetch before the container starts); the
image never outweighs the strategy's score."""

from __future__ import annotations

import pytest

from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import AppSpec, ContainerSpec, Platform, Resources
from scheduler.placement import ClusterSnapshot, EngineOptions, PlacementEngine, Task
from scheduler.placement.pipeline import Strategy
from scheduler.placement.snapshot import stored_names

GiB = 1 << 30


def node(name: str, images: list[str], *, mem: int = 8 * GiB) -> NodeInfo:
    return NodeInfo(id=name, hostname=name, status="ready",
                    platform=Platform(os="linux", arch="amd64"),
                    capacity=NodeResources(millicpus=4000, memory=mem, pids=1000),
                    images=images)


def cluster(holder: int, images: list[str], n: int = 5) -> list[NodeInfo]:
    return [node(f"n{i}", images if i == holder else ["other:1"]) for i in range(n)]


@pytest.mark.parametrize(("image", "stored"), [
    ("busybox", ["busybox:latest"]),
    ("busybox:latest", ["busybox:latest"]),
    ("app:2", ["app:1", "app:2"]),
    ("sha256:" + "a" * 64, ["x:1", "sha256:" + "a" * 64]),
])
@pytest.mark.parametrize("strategy", ["spread", "binpack"])
@pytest.mark.parametrize("holder", [0, 2, 4])
def test_a_tie_goes_to_the_node_holding_the_image(image: str, stored: list[str],
                                                  strategy: Strategy, holder: int) -> None:
    # Exact placement (sampling looks at a few nodes only, and ranks just those).
    for seed in range(4):  # whatever the seeded rank says
        placement = PlacementEngine(ClusterSnapshot.build(cluster(holder, stored)),
                                    EngineOptions(strategy=strategy, seed=seed))
        result = placement.place_batch([Task("t1", ContainerSpec(image=image))])
        assert [a.node_id for a in result.assignments] == [f"n{holder}"]


@pytest.mark.parametrize("image", ["busybox:1.36", "busybox@sha256:" + "b" * 64, "other"])
def test_other_tags_do_not_count(image: str) -> None:
    chosen = set()
    for seed in range(12):
        placement = PlacementEngine(ClusterSnapshot.build(cluster(0, ["busybox:latest"])),
                                    EngineOptions(seed=seed))
        result = placement.place_batch([Task("t1", ContainerSpec(image=image))])
        chosen.add(result.assignments[0].node_id)
    assert len(chosen) > 1  # the seeded rank decides, not the image


def test_an_app_unit_prefers_the_holder_too() -> None:
    placement = PlacementEngine(ClusterSnapshot.build(cluster(3, ["web:1"])), EngineOptions())
    result = placement.place_app(AppSpec(name="a", containers=[
        ContainerSpec(image="web:1", name="web")]))
    assert [a.node_id for a in result.assignments] == ["n3"]


def test_the_score_outweighs_the_image() -> None:
    """Spread still picks the emptier node, binpack the fuller one: the image only breaks ties."""
    spec = ContainerSpec(image="app:1", resources=Resources(millicpus=500, memory=GiB))
    busy = ContainerSpec(image="db:1", resources=Resources(millicpus=1000, memory=2 * GiB))
    infos = [node("holder", []), node("loaded", ["app:1"])]
    running = [ContainerInfo(id="c1", spec=busy, node_id="loaded", schedule_state="running")]
    for strategy, expected in (("spread", "holder"), ("binpack", "loaded")):
        placement = PlacementEngine(ClusterSnapshot.build(infos, running),
                                    EngineOptions(strategy=strategy))  # type: ignore[arg-type]
        result = placement.place_batch([Task("t1", spec)])
        assert [a.node_id for a in result.assignments] == [expected]


def test_stored_names() -> None:
    assert stored_names(["busybox:latest", "app:1", "sha256:00"]) == {
        "busybox:latest", "busybox", "app:1", "sha256:00"}
