"""The cluster's lazy indexes (scheduler/placement/snapshot.py): where each container runs
(``located``), the nodes by running image and the counts per job, each folded in on its own
when read, say what a pass over every node's containers says, however placements, removals and
reads of one index but not the others interleave."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.observed import NodeInfo, NodeResources
from protocol.specs import ContainerSpec, Platform, Resources
from scheduler.placement import ClusterSnapshot, PlacementEngine
from scheduler.placement.snapshot import PlacedContainer

IMAGES = ("app:1", "db:2", "cache")
READS = ("located", "image", "jobs", "count")
# (what: "place" on a node, "remove" a placed container, or read an index; a number: the node,
# the container among those placed, or the image; the job, for a placement)
Step = tuple[str, int, int]
step_st = st.tuples(st.sampled_from(["place", "place", "place", "remove", *READS]),
                    st.integers(0, 99), st.integers(0, 3))


def _cluster(nodes: int) -> ClusterSnapshot:
    return ClusterSnapshot.build([
        NodeInfo(id=f"n{i}", hostname=f"h{i}", platform=Platform(os="linux", arch="amd64"),
                 capacity=NodeResources(millicpus=64_000, memory=1 << 40),
                 status="ready", availability="active")
        for i in range(nodes)])


def _check(cluster: ClusterSnapshot, read: str, image: str) -> None:
    present = [(node, c) for node in cluster.nodes for c in node.containers]
    if read == "located":
        expected = {key: node for node, c in present for key in (c.id, c.name) if key}
        assert cluster.located == expected
    elif read == "image":
        held = {node.index for node, c in present if image in c.request.image_names}
        assert set(cluster.running_image(image)) == held
    elif read == "jobs":
        counts = Counter(c.request.job for _, c in present if c.request.job)
        assert {k: v for k, v in cluster.job_counts.items() if v} == dict(counts)
    else:
        assert cluster.container_count == len(present)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(1, 6), st.lists(step_st, max_size=60))
def test_each_index_folds_in_on_its_own_and_agrees_with_a_pass_over_the_nodes(
        nodes: int, steps: list[Step]) -> None:
    cluster = _cluster(nodes)
    engine = PlacementEngine(cluster)
    # Jobs with a name (counted), and one without; images with and without a tag.
    reqs = [engine.compile(ContainerSpec(
        image=IMAGES[j % len(IMAGES)], name=f"job{j}" if j < 3 else "",
        resources=Resources(millicpus=10, memory=1 << 20)))[1] for j in range(4)]
    placed: list[PlacedContainer] = []
    for serial, (what, number, job) in enumerate(steps):
        if what == "place":
            c = PlacedContainer(f"c{serial}", f"name{serial}" if job % 2 else "", reqs[job])
            cluster.place(cluster.nodes[number % nodes], c)
            placed.append(c)
        elif what == "remove":
            if placed:
                c = placed.pop(number % len(placed))
                assert cluster.release(c.id)
        else:
            _check(cluster, what, IMAGES[number % len(IMAGES)])
    for read in READS:
        for image in IMAGES:
            _check(cluster, read, image)
