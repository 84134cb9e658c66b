"""Swarm classic's affinity filter cases, as data: which of its three nodes pass each rule set.

Transcribed case by case (not code) from docker/classicswarm, Apache-2.0, commit
3cc018dc2cd0af0880330bd75bd351bbf54fde9c, scheduler/filter/affinity_test.go
(TestAffinityFilter, TestAffinityFilterLabels, the latter also through the
com.docker.swarm.affinities label). ``image==`` means an image stored on the node,
matched by id, tag or repository, as there. Classic runs soft rules here as hard ones ("soft"
mode) and an empty result is its error; the engine drops a soft rule nothing satisfies, which
test_placement_engine covers, so here a soft rule is held like a hard one.
"""

from __future__ import annotations

import pytest

from protocol.errors import InvalidArgument
from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import AFFINITIES_LABEL, ContainerSpec, Platform
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.filters.affinity import AffinityFilter
from scheduler.placement.request import compile_spec
from scheduler.placement.snapshot import ClusterSnapshot

# node-0 stores image-0 (tags tag1, tag2), node-1 image-1 (tag1, tag2) also tagged image-0:tag3,
# node-2 nothing; nodes 0 and 1 run two containers each, node-2 none.
NODES = [
    NodeInfo(id="node-0-id", hostname="node-0-name", status="ready",
             platform=Platform(os="linux", arch="amd64"), capacity=NodeResources(millicpus=1000),
             images=["image-0-id", "image-0:tag1", "image-0:tag2"]),
    NodeInfo(id="node-1-id", hostname="node-1-name", status="ready",
             platform=Platform(os="linux", arch="amd64"), capacity=NodeResources(millicpus=1000),
             images=["image-1-id", "image-1:tag1", "image-0:tag3", "image-1:tag2"]),
    NodeInfo(id="node-2-id", hostname="node-2-name", status="ready",
             platform=Platform(os="linux", arch="amd64"), capacity=NodeResources(millicpus=1000)),
]
# Classic's test containers have names and ids only: an image none of the rules names.
RUNNING = [
    ContainerInfo(id=f"container-n{n}-{i}-id", name=f"container-n{n}-{i}-name",
                  node_id=f"node-{n}-id", schedule_state="running",
                  spec=ContainerSpec(image="unrelated:1"))
    for n in (0, 1) for i in (0, 1)
]

INVALID = "invalid"
# (affinities, the nodes that pass: indexes into NODES, or INVALID when refused at submission)
CASES: list[tuple[list[str], set[int] | str]] = [
    ([], {0, 1, 2}),
    (["container==does_not_exist"], set()),
    (["container==container-n0*"], {0}),
    (["container==container-*"], {0, 1}),
    (["container==container-n0-0-id"], {0}),
    (["container!=container-n0-0-id"], {1, 2}),
    (["container!=container-n0-1-id"], {1, 2}),
    (["container==container-n1-0-name"], {1}),
    (["container!=container-n1-0-name"], {0, 2}),
    (["container!=container-n1-1-name"], {0, 2}),
    (["container!=container-n1-1-name", "container==container-n1-1-name"], set()),
    (["image==image-0-id"], {0}),
    (["image==image-0:tag3"], {1}),
    (["image!=image-0:tag3"], {0, 2}),
    (["image==image-1"], {1}),
    (["image!=image-1"], {0, 2}),
    (["container!=container-n0-1-id", "container!=container-n1-1-id"], {2}),
    (["container==container-n0-1-id", "container==container-n1-1-id"], set()),
    (["image==~image-0:tag3"], {1}),
    (["image==~ima~ge-0:tag3"], INVALID),
    (["image==~image-1:tag3"], set()),
    (["image==~image-*"], {0, 1}),
    (["image!=~image-*"], {2}),
    (["image==~/image-\\d*/"], {0, 1}),
    (["image=image-0:tag3"], INVALID),  # '=' is no operator
    (["image=!image-0:tag3"], INVALID),
]


def passing(affinities: list[str], nodes: list[NodeInfo] = NODES,
            running: list[ContainerInfo] = RUNNING) -> set[int]:
    cluster = ClusterSnapshot.build(nodes, running)
    req = compile_spec(ContainerSpec(image="new:1", affinities=affinities))
    cycle = PlacementCycle(cluster)
    f = AffinityFilter()
    return {n.index for n in cluster.nodes if f.check(req, n, cycle) is None}


@pytest.mark.parametrize(("affinities", "expected"), CASES, ids=[" ".join(c[0]) or "none"
                                                                 for c in CASES])
def test_classic_affinity_filter(affinities: list[str], expected: set[int] | str) -> None:
    if expected == INVALID:
        with pytest.raises(InvalidArgument):
            passing(affinities)
    else:
        assert passing(affinities) == expected


# TestAffinityFilterLabels: node-0 stores image-0:tag0, node-1 image-1:tag1.
LABEL_NODES = [
    NodeInfo(id=f"node-{i}-id", hostname=f"node-{i}-name", status="ready",
             platform=Platform(os="linux", arch="amd64"),
             images=[f"image-{i}-id", f"image-{i}:tag{i}"]) for i in (0, 1)
]
LABEL_RUNNING = [
    ContainerInfo(id=f"container-n{i}-id", name=f"container-n{i}-name", node_id=f"node-{i}-id",
                  schedule_state="running", spec=ContainerSpec(image="unrelated:1"))
    for i in (0, 1)
]


@pytest.mark.parametrize(("affinities", "expected"), [
    (["image==image-1"], {1}),
    (["image!=image-1"], {0}),
])
def test_classic_affinity_filter_labels(affinities: list[str], expected: set[int]) -> None:
    assert passing(affinities, LABEL_NODES, LABEL_RUNNING) == expected


@pytest.mark.parametrize(("label", "expected"), [
    ('["image==image-1"]', {1}),
    ('["image!=image-1"]', {0}),
])
def test_classic_affinities_label(label: str, expected: set[int]) -> None:
    # the same rules carried in the com.docker.swarm.affinities label
    cluster = ClusterSnapshot.build(LABEL_NODES, LABEL_RUNNING)
    req = compile_spec(ContainerSpec(image="new:1", labels={AFFINITIES_LABEL: label}))
    cycle = PlacementCycle(cluster)
    assert {n.index for n in cluster.nodes
            if AffinityFilter().check(req, n, cycle) is None} == expected


def test_a_container_of_the_image_is_its_own_key() -> None:
    # Not classic's: container.image== is the old meaning, a container of that image running.
    running = [ContainerInfo(id="c1", name="c1", node_id="node-2-id", schedule_state="running",
                             spec=ContainerSpec(image="image-0:tag1"))]
    assert passing(["container.image==image-0"], running=running) == {2}
    assert passing(["image==image-0"], running=running) == {0, 1, 2}  # pulled there for c1
    assert passing(["container.image!=image-0"], running=running) == {0, 1}
