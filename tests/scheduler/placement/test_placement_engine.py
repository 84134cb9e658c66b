"""The engine end to end: strategies, soft rules, explanations, batches, apps, bad input."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
import pytest

from protocol.errors import InvalidArgument
from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import AppSpec, ContainerSpec, Platform, PortMapping, Resources
from scheduler.placement import (
    ClusterSnapshot,
    EngineOptions,
    PlacementEngine,
    Task,
    check_placement,
    validate_app,
    validate_spec,
)

GiB = 1 << 30


def nodes(n: int, *, windows: int = 0, mem: int = 8 * GiB, cpu: int = 4000) -> list[NodeInfo]:
    return [
        NodeInfo(id=f"n{i}", hostname=f"h{i}", status="ready",
                 platform=Platform(os="windows" if i < windows else "linux", arch="amd64"),
                 capacity=NodeResources(millicpus=cpu, memory=mem, pids=1000),
                 labels={"zone": "ab"[i % 2]})
        for i in range(n)
    ]


def engine(infos: list[NodeInfo], existing: list[ContainerInfo] | None = None,
           **opts: object) -> PlacementEngine:
    return PlacementEngine(ClusterSnapshot.build(infos, existing or []),
                           EngineOptions(**opts))  # type: ignore[arg-type]


def job(spec: ContainerSpec, n: int, prefix: str = "t") -> list[Task]:
    return [Task(f"{prefix}{i}", spec) for i in range(n)]


SMALL = ContainerSpec(image="app:1", resources=Resources(millicpus=500, memory=1 * GiB))


def test_spread_balances_and_binpack_fills() -> None:
    infos = nodes(4)
    spread = engine(infos).place_batch(job(SMALL, 8))
    assert sorted(Counter(a.node_id for a in spread.assignments).values()) == [2, 2, 2, 2]
    binpack = engine(infos, strategy="binpack").place_batch(job(SMALL, 8))
    assert len(set(a.node_id for a in binpack.assignments)) == 1  # 8 x 1 GiB on one 8 GiB node


def test_random_is_seeded() -> None:
    infos = nodes(10)
    a = engine(infos, strategy="random", seed=7).place_batch(job(SMALL, 20))
    b = engine(infos, strategy="random", seed=7).place_batch(job(SMALL, 20))
    c = engine(infos, strategy="random", seed=8).place_batch(job(SMALL, 20))
    assert a.node_of() == b.node_of()
    assert a.node_of() != c.node_of()


def test_zero_reservation_tasks_still_spread() -> None:
    # Swarm classic's weight ignores them; the container count breaks the tie.
    result = engine(nodes(5)).place_batch(job(ContainerSpec(image="x"), 10))
    assert sorted(Counter(a.node_id for a in result.assignments).values()) == [2] * 5


@pytest.mark.parametrize(("resources", "placed"), [
    (Resources(memory=6 * GiB), 2),  # no reservation: the limit is what the node holds
    (Resources(memory=6 * GiB, reserved_memory=3 * GiB), 4),
    (Resources(reserved_memory=5 * GiB), 2),  # a reservation without a limit
    (Resources(millicpus=4000, reserved_millicpus=1000), 8),
])
def test_placement_counts_the_reservation_else_the_limit(resources: Resources,
                                                          placed: int) -> None:
    """Swarm's rule: a node takes what its reservations leave room for; the limit is the
    runtime's, and counted only when no reservation is given."""
    infos = nodes(2)
    spec = ContainerSpec(image="db", resources=resources)
    tasks = job(spec, 10)
    result = engine(infos).place_batch(tasks)
    assert len(result.assignments) == placed
    assert check_placement(infos, [], tasks, result) == []


def test_batch_places_what_fits_and_explains_the_rest() -> None:
    infos = nodes(5, windows=2)
    big = ContainerSpec(image="db", resources=Resources(memory=6 * GiB))
    result = engine(infos).place_batch(job(big, 5))
    assert len(result.assignments) == 3
    assert len(result.refusals) == 2
    message = result.refusals[0].explanation.message
    assert message == ("placed 3 of 5; for the rest 0/5 nodes available: "
                       "3 insufficient memory (needs 6 GiB, best node has 2 GiB), "
                       "2 platform windows/amd64 ≠ linux/*")
    reasons = {r.reason: r for r in result.refusals[0].explanation.reasons}
    assert reasons["platform windows/amd64 ≠ linux/*"].examples == ("n0", "n1")


def test_soft_rules_first_then_relaxed_and_recorded() -> None:
    spec = ContainerSpec(image="x", resources=Resources(memory=4 * GiB),
                         constraints=["~node.labels.zone==a"])
    result = engine(nodes(4)).place_batch(job(spec, 6))
    by_zone = Counter(a.relaxed for a in result.assignments)
    assert by_zone[()] == 4  # two zone-a nodes, two tasks each
    assert by_zone[("~node.labels.zone==a",)] == 2
    assert not result.refusals


def test_relaxed_lists_only_rules_the_node_misses() -> None:
    spec = ContainerSpec(image="x", constraints=["~zone==a", "~node.hostname==h9"])
    result = engine(nodes(2), strategy="binpack").place_batch(job(spec, 1))
    (a,) = result.assignments
    assert a.relaxed == (("~node.hostname==h9",) if a.node_id == "n0"
                         else ("~zone==a", "~node.hostname==h9"))


def test_soft_rules_reported_when_nothing_fits() -> None:
    spec = ContainerSpec(image="x", platform=Platform(os="windows"), constraints=["~zone==c"])
    result = engine(nodes(2)).place_batch(job(spec, 1))
    assert result.refusals[0].explanation.relaxed == ("~zone==c",)
    assert "soft rules dropped: ~zone==c" in result.refusals[0].explanation.message


def test_host_ports_one_per_node_per_protocol() -> None:
    tcp = ContainerSpec(image="x", ports=[PortMapping(container_port=80, host_port=80)])
    udp = ContainerSpec(image="y", ports=[PortMapping(container_port=80, host_port=80,
                                                      protocol="udp")])
    result = engine(nodes(3)).place_batch(job(tcp, 4, "t") + job(udp, 3, "u"))
    assert len(result.assignments) == 6
    assert [r.task_id for r in result.refusals] == ["t3"]
    assert "3 host port 80/tcp in use" in result.refusals[0].explanation.message


def test_anti_affinity_to_own_job_is_one_per_node() -> None:
    spec = ContainerSpec(image="x", labels={"app": "kv"}, affinities=["label.app!=kv"])
    result = engine(nodes(3)).place_batch(job(spec, 5))
    assert len({a.node_id for a in result.assignments}) == 3
    assert len(result.refusals) == 2


def test_affinity_follows_containers_placed_earlier_in_the_batch() -> None:
    db = ContainerSpec(image="postgres:16", name="db")
    web = ContainerSpec(image="web", affinities=["image==postgres"])
    result = engine(nodes(6)).place_batch([Task("db", db), *job(web, 3)])
    where = result.node_of()
    assert {where["t0"], where["t1"], where["t2"]} == {where["db"]}


def test_guards_bar_names_not_whole_classes() -> None:
    lonely = ContainerInfo(id="g", name="g", node_id="n0", schedule_state="running",
                           spec=ContainerSpec(image="x", affinities=["container!=web-1"]))
    e = engine(nodes(1), [lonely])
    tasks = [Task("a", ContainerSpec(image="w", name="web-1")),
             Task("b", ContainerSpec(image="w", name="web-2"))]
    result = e.place_batch(tasks)
    assert [a.task_id for a in result.assignments] == ["b"]
    assert "g has anti-affinity container!=web-1" in result.refusals[0].explanation.message


def test_draining_and_down_nodes_take_nothing() -> None:
    infos = nodes(3)
    infos[0] = NodeInfo(**{**_fields(infos[0]), "availability": "drain"})
    infos[1] = NodeInfo(**{**_fields(infos[1]), "status": "down"})
    result = engine(infos).place_batch(job(SMALL, 3))
    assert {a.node_id for a in result.assignments} == {"n2"}


def _fields(info: NodeInfo) -> dict[str, object]:
    return {f: getattr(info, f) for f in info.__struct_fields__}


def test_max_containers_per_node() -> None:
    e = PlacementEngine(ClusterSnapshot.build(nodes(2), max_containers=3))
    result = e.place_batch(job(ContainerSpec(image="x"), 7))
    assert len(result.assignments) == 6
    assert "container limit reached (3 per node)" in result.refusals[0].explanation.message


def test_app_links_colocate_and_all_or_nothing_rolls_back() -> None:
    db = ContainerSpec(image="postgres", name="db", resources=Resources(memory=5 * GiB))
    web = ContainerSpec(image="web", name="web", links=["db:database"],
                        resources=Resources(memory=2 * GiB))
    data = ContainerSpec(image="busybox", name="data", volumes_from=["db"])
    e = engine(nodes(2))
    app = AppSpec(name="shop", containers=[web, db, data])
    result = e.place_app(app)
    assert len({a.node_id for a in result.assignments}) == 1  # one group: 7 GiB on one node
    huge = ContainerSpec(image="x", name="huge", resources=Resources(memory=15 * GiB // 2))
    before = [(n.used_mem, len(n.containers)) for n in e.cluster.nodes]
    failed = e.place_app(AppSpec(name="two", containers=[SMALL, huge], all_or_nothing=True))
    assert not failed.assignments
    assert len(failed.refusals) == 2
    assert "all-or-nothing" in failed.refusals[0].explanation.message
    assert [(n.used_mem, len(n.containers)) for n in e.cluster.nodes] == before
    partial = e.place_app(AppSpec(name="three", containers=[SMALL, huge]))
    assert len(partial.assignments) == 1
    assert len(partial.refusals) == 1


def test_app_group_conflict_is_explained() -> None:
    a = ContainerSpec(image="a", name="a", ports=[PortMapping(container_port=1, host_port=80)])
    b = ContainerSpec(image="b", name="b", links=["a"],
                      ports=[PortMapping(container_port=1, host_port=80)])
    result = engine(nodes(2)).place_app(AppSpec(name="x", containers=[a, b]))
    assert "published twice in the group" in result.refusals[0].explanation.message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ContainerSpec(image="x", constraints=["zone=a"]), "constraints[0]"),
        (ContainerSpec(image="x", affinities=["image==ok", "container==/(/"]), "affinities[1]"),
        (ContainerSpec(image="x", platform=Platform(os="plan9")), "platform.os"),
        (ContainerSpec(image="x", platform=Platform(arch="vax")), "platform.arch"),
        (ContainerSpec(image="x", resources=Resources(memory=-1)), "resources.memory"),
        (ContainerSpec(image="x", ports=[PortMapping(container_port=1, host_port=80),
                                         PortMapping(container_port=2, host_port=80)]),
         "ports[1]"),
        (ContainerSpec(image="x", links=[":alias"]), "links[0]"),
    ],
)
def test_bad_input_is_a_typed_error_and_changes_nothing(spec: ContainerSpec, field: str) -> None:
    e = engine(nodes(2))
    with pytest.raises(InvalidArgument) as info:
        e.place_batch(job(SMALL, 3) + job(spec, 1, "bad"))
    assert info.value.details["field"] == field
    assert e.cluster.container_count == 0


@pytest.mark.parametrize("options", [{"strategy": "tightest"}, {"sample": "sqrt"},
                                     {"sample": 0.0}, {"order": "newest"}])
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        EngineOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("sample", ["log2", 0.25, 1.0])
def test_sampling_places_everything_that_fits(sample: str | float) -> None:
    infos = nodes(20)
    tasks = job(SMALL, 100)
    result = engine(infos, sample=sample).place_batch(tasks)
    assert len(result.assignments) == 100
    assert check_placement(infos, [], tasks, result) == []


def test_one_task_per_call_uses_the_cached_heap_and_matches_a_batch() -> None:
    infos = nodes(7)
    tasks = job(SMALL, 30)
    one_by_one = engine(infos)
    placed = {}
    for t in tasks:
        placed.update(one_by_one.place_batch([t]).node_of())
    assert placed == engine(infos).place_batch(tasks).node_of()


def test_largest_first_orders_classes_by_size() -> None:
    big = ContainerSpec(image="big", resources=Resources(memory=6 * GiB))
    tasks = job(SMALL, 4, "s") + job(big, 2, "b")
    result = engine(nodes(2), order="largest-first", strategy="binpack").place_batch(tasks)
    assert [a.task_id for a in result.assignments][:2] == ["b0", "b1"]
    assert not result.refusals


def test_validate_app_names_the_container_and_field() -> None:
    app = AppSpec(name="x", containers=[SMALL, ContainerSpec(image="y", constraints=["a=b"])])
    with pytest.raises(InvalidArgument) as info:
        validate_app(app)
    assert info.value.details["field"] == "containers[1].constraints[0]"
    twice = AppSpec(name="x", containers=[ContainerSpec(image="a", name="n"),
                                          ContainerSpec(image="b", name="n")])
    with pytest.raises(InvalidArgument, match="used twice"):
        engine(nodes(1)).place_app(twice)


def test_validate_spec_accepts_good_input() -> None:
    validate_spec(ContainerSpec(image="x", constraints=["~zone==a"], affinities=["image!=y"],
                                platform=Platform(os="linux", arch="aarch64")))


def test_a_node_listed_twice_counts_once() -> None:
    infos = nodes(2)
    cluster = ClusterSnapshot.build([*infos, infos[0]])
    assert [n.id for n in cluster.nodes] == ["n0", "n1"]


@pytest.mark.parametrize(("strategy", "weighting", "per_node"), [
    # Swarm classic sorts exactly equal weights by container count: 60 containers that
    # reserve nothing spread 30/30 (strategy/weighted_node.go); binpack reverses the order,
    # so the fuller node takes them all. shoal's weighting agrees on exact ties.
    ("spread", "swarm", [30, 30]),
    ("spread", "shoal", [30, 30]),
    ("binpack", "swarm", [60]),
    ("binpack", "shoal", [60]),
])
def test_exact_ties_go_by_container_count(strategy: str, weighting: str,
                                          per_node: list[int]) -> None:
    e = engine(nodes(2), strategy=strategy, weighting=weighting)
    result = e.place_batch(job(ContainerSpec(image="x"), 60))
    assert sorted(Counter(a.node_id for a in result.assignments).values()) == per_node


@pytest.mark.parametrize(("weighting", "chosen"), [
    ("swarm", "n1"),  # classic: the lower weight, however many containers it holds
    ("shoal", "n0"),  # shoal: 1 millicpu of 4,000 cpus weighs less than 4 more containers
])
def test_near_ties_go_by_count_only_in_shoal_weighting(weighting: str, chosen: str) -> None:
    infos = nodes(2, cpu=4_000_000)
    existing = [ContainerInfo(id="r", name="r", node_id="n0", schedule_state="running",
                              spec=ContainerSpec(image="x", resources=Resources(millicpus=1)))]
    existing += [ContainerInfo(id=f"s{i}", name=f"s{i}", node_id="n1", schedule_state="running",
                               spec=ContainerSpec(image="x")) for i in range(5)]
    result = engine(infos, existing, weighting=weighting).place_batch(
        job(ContainerSpec(image="x"), 1))
    assert [a.node_id for a in result.assignments] == [chosen]


def test_details_list_example_nodes() -> None:
    spec = ContainerSpec(image="x", platform=Platform(os="windows"))
    result = engine(nodes(4)).place_batch(job(spec, 1))
    details = result.refusals[0].explanation.details()
    assert details.splitlines()[1] == "  4 platform linux/amd64 ≠ windows/amd64: e.g. n0, n1, n2"


def test_release_gives_capacity_back_to_later_batches() -> None:
    e = engine(nodes(1))
    big = ContainerSpec(image="x", resources=Resources(memory=5 * GiB))
    assert len(e.place_batch(job(big, 2, "a")).assignments) == 1  # heap for this class cached
    assert e.release("a0")
    assert not e.release("a0")
    assert e.cluster.nodes[0].used_mem == 0
    assert [a.task_id for a in e.place_batch(job(big, 1, "b")).assignments] == ["b0"]


@pytest.mark.parametrize("sample", ["all", "log2"])
def test_guard_on_the_only_soft_node_falls_back_to_relaxed(sample: str) -> None:
    # Found by hypothesis: a running container's anti-affinity bars the one node the soft
    # rule allows; the task must then go elsewhere without the soft rule, not be refused.
    guard = ContainerInfo(id="g", name="g", node_id="n0", schedule_state="running",
                          spec=ContainerSpec(image="x", affinities=["label.app!=kv"]))
    spec = ContainerSpec(image="kv", labels={"app": "kv"}, constraints=["~node.hostname==h0"])
    result = engine(nodes(3), [guard], sample=sample).place_batch(job(spec, 2))
    assert not result.refusals
    assert {a.relaxed for a in result.assignments} == {("~node.hostname==h0",)}
    assert "n0" not in {a.node_id for a in result.assignments}


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_a_relaxed_soft_affinity_holds_again_where_a_sibling_landed(strategy: str) -> None:
    """``~image==db`` that no node satisfies is relaxed for the first task; the node it joins
    then runs db, so every later task of the job is judged with the rule again and follows it
    (Swarm classic judges each task alone; the engine once kept it relaxed for the whole job)."""
    from bench._naive_placement import NaiveScheduler

    infos = nodes(6)
    spec = ContainerSpec(image="db", affinities=["~image==db"])
    tasks = [Task(f"t{i}", spec) for i in range(4)]
    engine = PlacementEngine(ClusterSnapshot.build(infos, []), EngineOptions(strategy=strategy))  # type: ignore[arg-type]
    result = engine.place_batch(tasks)
    assert len(set(result.node_of().values())) == 1
    assert [a.relaxed for a in result.assignments] == [("~image==db",), (), (), ()]
    naive = NaiveScheduler(ClusterSnapshot.build(infos, []), strategy=strategy)  # type: ignore[arg-type]
    assert naive.place_batch(tasks).node_of() == result.node_of()


def test_a_network_job_is_kept_off_host_network_only_nodes_and_told_why() -> None:
    """A process-driver node (the host's network only) takes a job on --network none or
    host, never one on a bridge or overlay network: the explanation counts those nodes."""
    infos = nodes(4)
    for i in (0, 1):
        infos[i] = NodeInfo(**{**_fields(infos[i]), "runtime": "process"})
    big = ContainerSpec(image="db", network="front", resources=Resources(memory=6 * GiB))
    result = engine(infos).place_batch(job(big, 3))
    assert sorted(a.node_id for a in result.assignments) == ["n2", "n3"]
    assert result.refusals[0].explanation.message == (
        "placed 2 of 3; for the rest 0/4 nodes available: 2 have only the host network "
        "(process driver), not front, 2 insufficient memory (needs 6 GiB, best node has "
        "2 GiB)")
    on_host = msgspec.structs.replace(big, network="host")
    assert len(engine(infos).place_batch(job(on_host, 4)).assignments) == 4


class _CountingFilter:
    """A dynamic filter that counts its checks: how many times the engine met a node."""

    def __init__(self, inner: Any, counter: list[int]) -> None:
        self.inner, self.counter = inner, counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def check(self, req: Any, node: Any, cycle: Any) -> Any:
        self.counter[0] += 1
        return self.inner.check(req, node, cycle)


@pytest.mark.parametrize("preferences", [[], ["spread=node.labels.zone"]])
def test_a_class_alternating_soft_and_relaxed_keeps_its_heaps(preferences: list[str]) -> None:
    """``~image==db`` holds only where a sibling landed, and max-per-node 2 fills that node at
    once: the job alternates, one relaxed task and then one more with the rule, a hundred
    times. Each attempt keeps its heap across the switches (it once built both again for every
    task, a pass over the cluster per task); the choices stay the naive scheduler's."""
    from bench._naive_placement import NaiveScheduler

    infos = nodes(400)
    spec = ContainerSpec(image="db", name="db", affinities=["~image==db"], max_per_node=2,
                         preferences=preferences)
    tasks = [Task(f"t{i}", spec) for i in range(200)]
    engine = PlacementEngine(ClusterSnapshot.build(infos, []))
    checks = [0]
    engine._dynamic = tuple(_CountingFilter(f, checks) for f in engine._dynamic)
    result = engine.place_batch(tasks)
    assert len(result.assignments) == 200
    assert sum(1 for a in result.assignments if a.relaxed) == 100
    assert checks[0] < 4 * len(infos) + 40 * len(tasks)  # not a pass per task (159,000 before)
    naive = NaiveScheduler(ClusterSnapshot.build(infos, []))
    assert naive.place_batch(tasks).node_of() == result.node_of()
