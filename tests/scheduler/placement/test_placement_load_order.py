"""The shared load order's shortcuts (scheduler/placement/load_order.py) choose exactly what a
heap per class chooses: a walk that stops at the first empty nodes in rank order (ties), the
members storing the image met first, and a chosen node re-scored only when it comes back to the
top (``requeue``)."""

from __future__ import annotations

from collections.abc import Iterable
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import ContainerSpec, Platform, Resources
from scheduler.placement import (
    Assignment,
    ClusterSnapshot,
    EngineOptions,
    PlacementEngine,
    Task,
    load_order,
)
from scheduler.placement import engine as engine_module
from scheduler.placement.filters import PlacementCycle
from scheduler.placement.scorers.spread import SpreadScorer
from scheduler.placement.snapshot import NodeSnapshot, PlacedContainer
from scheduler.placement.spread_entries import entry_maker

MiB = 1 << 20
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
IMAGE = "app:1"
# Few capacities, so that many nodes tie; pids capped on some nodes (not part of the group).
capacity_st = st.sampled_from([(1000, 1024), (2000, 2048), (2000, 2048), (0, 2048)])


@st.composite
def tied_clusters(draw: st.DrawFn) -> tuple[list[NodeInfo], list[ContainerInfo]]:
    """Mostly empty nodes of a few capacities, some storing the jobs' image, a few running
    containers already."""
    infos = []
    for i in range(draw(st.integers(4, 48))):
        cpu, mem = draw(capacity_st)
        infos.append(NodeInfo(
            id=f"n{i}", hostname=f"h{i}", platform=Platform(os="linux", arch="amd64"),
            capacity=NodeResources(millicpus=cpu, memory=mem * MiB,
                                   pids=draw(st.sampled_from([0, 0, 3]))),
            labels={"zone": draw(st.sampled_from("ab"))},
            images=draw(st.sampled_from([[], [], [], [IMAGE], ["other:2"]])),
            status="ready", availability="active"))
    base = ContainerSpec(image="base:1", resources=Resources(millicpus=100, memory=64 * MiB))
    existing = [ContainerInfo(id=f"e{j}", name=f"e{j}", spec=base,
                              node_id=draw(st.sampled_from(infos)).id, schedule_state="running")
                for j in range(draw(st.integers(0, 5)))]
    return infos, existing


@st.composite
def jobs(draw: st.DrawFn) -> list[Task]:
    tasks: list[Task] = []
    for k in range(draw(st.integers(1, 3))):
        spec = ContainerSpec(
            image=draw(st.sampled_from([IMAGE, IMAGE, "other:2", "none:3"])), name=f"job{k}",
            resources=Resources(millicpus=draw(st.sampled_from([0, 10, 100, 400])),
                                memory=draw(st.sampled_from([0, 16, 64])) * MiB,
                                pids=draw(st.sampled_from([0, 1]))),
            constraints=draw(st.sampled_from([[], [], ["node.labels.zone==a"]])),
            preferences=draw(st.sampled_from([[], [], ["spread=node.labels.zone"]])))
        tasks += [Task(f"j{k}.{i}", spec) for i in range(draw(st.integers(1, 60)))]
    return tasks


@SETTINGS
@given(tied_clusters(), jobs(), st.integers(0, 3), st.sampled_from([0, 2, 256]),
       st.lists(st.integers(1, 50), min_size=1, max_size=3))
def test_walks_over_ties_choose_what_a_heap_per_class_chooses(
        cluster: tuple[list[NodeInfo], list[ContainerInfo]], tasks: list[Task], seed: int,
        max_holders: int, cuts: list[int]) -> None:
    """Whether the members storing the image are met first (few enough) or not (the walk then
    keeps to the float bound), every task goes where a heap over every candidate sends it."""
    infos, existing = cluster
    engines = [PlacementEngine(ClusterSnapshot.build(infos, existing),
                               EngineOptions(seed=seed, shared_order=shared))
               for shared in (True, False)]
    at = placed = 0
    for size in [*cuts, len(tasks)]:
        chunk = tasks[at: at + size]
        at += size
        with mock.patch.multiple(engine_module, WALK_MIN_TASKS=1, WALK_CANDIDATES_PER_TASK=0), \
                mock.patch.object(load_order, "MAX_HOLDERS", max_holders):
            walked = engines[0].place_batch(chunk)
        heaped = engines[1].place_batch(chunk)
        assert walked.assignments == heaped.assignments
        assert [r.task_id for r in walked.refusals] == [r.task_id for r in heaped.refusals]
        placed += len(walked.assignments)
    assert placed  # every drawn cluster has room for some task


def _fresh(count: int, images: dict[int, list[str]]) -> list[NodeInfo]:
    return [NodeInfo(id=f"n{i}", hostname=f"h{i}", platform=Platform(os="linux", arch="amd64"),
                     capacity=NodeResources(millicpus=8000, memory=8192 * MiB),
                     images=images.get(i, []), status="ready", availability="active")
            for i in range(count)]


def _met_nodes(engine: PlacementEngine, tasks: list[Task]) -> tuple[int, list[Assignment]]:
    """How many nodes the walks meet while the engine places ``tasks``, and where it put
    them."""
    met = 0
    settle = load_order.Walk.settle

    def counting(walk: load_order.Walk, heap: list[load_order.HeapEntry]) -> None:
        nonlocal met
        entries = walk._entries

        def count(nodes: Iterable[NodeSnapshot]) -> list[load_order.HeapEntry]:
            nonlocal met
            nodes = list(nodes)
            met += len(nodes)
            return entries(nodes)

        walk._entries = count
        try:
            settle(walk, heap)
        finally:
            walk._entries = entries

    with mock.patch.object(load_order.Walk, "settle", counting):
        assignments = engine.place_batch(tasks).assignments
    return met, assignments


def test_a_walk_over_a_fresh_cluster_meets_a_few_slices_not_every_tied_node() -> None:
    """2,000 empty nodes of one capacity all score the request's term: the walk stops at the
    first empty nodes in rank order, and still chooses what a heap per class chooses."""
    spec = ContainerSpec(image=IMAGE, resources=Resources(millicpus=10, memory=16 * MiB))
    tasks = [Task(f"t{i}", spec) for i in range(20)]
    walked = PlacementEngine(ClusterSnapshot.build(_fresh(2000, {})))
    heaped = PlacementEngine(ClusterSnapshot.build(_fresh(2000, {})),
                             EngineOptions(shared_order=False))
    met, assignments = _met_nodes(walked, tasks)
    assert len(assignments) == 20
    assert met <= 4 * load_order.SLICE
    assert assignments == heaped.place_batch(tasks).assignments
    more = [Task(f"u{i}", spec) for i in range(40)]  # some nodes are no longer empty
    assert walked.place_batch(more).assignments == heaped.place_batch(more).assignments


def test_members_storing_the_image_win_ties_and_are_met_first() -> None:
    """Three nodes store the image, far apart in rank: the first tasks go to them (the image
    is there), then on by rank; with too many holders to meet first, every tied node is met."""
    spec = ContainerSpec(image=IMAGE, resources=Resources(millicpus=10, memory=16 * MiB))
    tasks = [Task(f"t{i}", spec) for i in range(20)]
    holders = {5: [IMAGE], 700: [IMAGE], 1999: [IMAGE]}
    walked = PlacementEngine(ClusterSnapshot.build(_fresh(2000, holders)))
    heaped = PlacementEngine(ClusterSnapshot.build(_fresh(2000, holders)),
                             EngineOptions(shared_order=False))
    met, assignments = _met_nodes(walked, tasks)
    assert {a.node_id for a in assignments[:3]} == {"n5", "n700", "n1999"}
    assert met <= 3 + 4 * load_order.SLICE
    assert assignments == heaped.place_batch(tasks).assignments
    with mock.patch.object(load_order, "MAX_HOLDERS", 2):
        many = PlacementEngine(ClusterSnapshot.build(_fresh(2000, holders)))
        met, assignments_many = _met_nodes(many, tasks)
    assert met >= 2000  # the float bound alone: every tied node is met
    assert assignments_many == assignments


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(0, 64_000), st.integers(0, 1 << 38), st.integers(0, 3000),
       st.integers(0, 4000), st.integers(0, 1 << 34), st.sampled_from([0, 1000, 4000, 64_000]),
       st.sampled_from([0, 1 << 30, 256 << 30]))
def test_requeue_leaves_an_entry_below_the_nodes_next_exact_one(
        used_cpu: int, used_mem: int, count: int, millicpus: int, memory: int, cap_cpu: int,
        cap_mem: int) -> None:
    """The entry ``requeue`` leaves for a node that just took a task is strictly below the
    exact entry the node has for the next task, whatever its load, and is never taken for
    exact: so a run that re-scores the node only when it comes back to the top chooses what
    one that re-scores it at once chooses."""
    info = NodeInfo(id="n0", hostname="h0", platform=Platform(os="linux", arch="amd64"),
                    capacity=NodeResources(millicpus=cap_cpu, memory=cap_mem),
                    status="ready", availability="active")
    cluster = ClusterSnapshot.build([info])
    engine = PlacementEngine(cluster)
    req = engine.compile(ContainerSpec(image=IMAGE, resources=Resources(
        millicpus=millicpus, memory=memory)))[1]
    node = cluster.nodes[0]
    node.used_cpu, node.used_mem = used_cpu, used_mem
    node.containers.extend(PlacedContainer(f"c{i}", "", req) for i in range(count))
    order = load_order.LoadOrder(cluster, SpreadScorer(), [0])
    make = entry_maker(req, [0], PlacementCycle(cluster))
    heap: list[load_order.HeapEntry] = [(SpreadScorer().key(req, node), 1, 0, 0, node.version)]
    cluster.place(node, PlacedContainer("next", "", req))
    exact = (SpreadScorer().key(req, node), 1, 0, 0, node.version)
    load_order.requeue(heap, node, order.lifts(req), order.group_of, make)
    assert heap[0] < exact
    assert heap[0][4] != node.version  # checked again when it reaches the top
    made = make(node)
    assert made is None or made[0] == exact[0]
    load_order.requeue(heap, node, None, order.group_of, make)  # without lifts: exact now
    assert heap == ([] if made is None else [made])
