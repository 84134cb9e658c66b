"""Placement preferences (spread=node.labels.<name>, spread=engine.labels.<name>): parsing,
refusals, and how replicas spread over label values, nested preferences and the strategy
within a branch.

The SwarmKit cases are transcribed as data from docker/swarmkit manager/scheduler/
scheduler_test.go (testPreferences, testMultiplePreferences) at commit 2dcf70aa, Apache-2.0.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench._naive_placement import NaiveScheduler
from protocol.errors import InvalidArgument
from protocol.observed import ContainerInfo, NodeInfo, NodeResources
from protocol.specs import AppSpec, ContainerSpec, Platform, Resources
from scheduler.placement import (
    ClusterSnapshot,
    EngineOptions,
    PlacementEngine,
    Task,
    check_placement,
    validate_spec,
)
from scheduler.placement.rules import parse_preference

GB = 10**9


def node(nid: str, memory: int = GB, engine: dict[str, str] | None = None,
         **labels: str) -> NodeInfo:
    return NodeInfo(id=nid, hostname=nid, status="ready", labels=labels,
                    engine_labels=engine or {},
                    platform=Platform(os="linux", arch="amd64"),
                    capacity=NodeResources(millicpus=4000, memory=memory, pids=1000))


def place(infos: list[NodeInfo], spec: ContainerSpec, n: int,
          existing: list[ContainerInfo] | None = None, **opts: object) -> Counter[str]:
    tasks = [Task(f"t{i}", spec) for i in range(n)]
    engine = PlacementEngine(ClusterSnapshot.build(infos, existing or []),
                             EngineOptions(**opts))  # type: ignore[arg-type]
    result = engine.place_batch(tasks)
    assert not check_placement(infos, existing or [], tasks, result)
    return Counter(a.node_id for a in result.assignments)


def job(*preferences: str, memory: int = 0) -> ContainerSpec:
    return ContainerSpec(image="x", name="web", preferences=list(preferences),
                         resources=Resources(memory=memory))


@pytest.mark.parametrize(("text", "label"), [
    ("spread=node.labels.zone", "node.labels.zone"),
    ("spread=node.labels.Zone", "node.labels.Zone"),  # a label's own name keeps its case
    ("spread=node.labels.topology.kubernetes.io/zone",
     "node.labels.topology.kubernetes.io/zone"),
    (" spread = node.labels.az ", "node.labels.az"),
    ("spread=engine.labels.zone", "engine.labels.zone"),  # SwarmKit spreads over both
    ("spread=engine.labels.Zone", "engine.labels.Zone"),
])
def test_a_preference_names_a_node_label(text: str, label: str) -> None:
    assert parse_preference(text, "preferences[0]") == label


@pytest.mark.parametrize(("text", "why"), [
    ("binpack=node.labels.zone", "unknown preference"),
    ("spread", "unknown preference"),
    ("", "unknown preference"),
    ("spread=zone", "spreads over a node label"),  # classic's bare label key is no preference
    ("spread=node.hostname", "spreads over a node label"),
    ("spread=node.labels.", "spreads over a node label"),
    ("spread=NODE.LABELS.zone", "another case"),
    ("spread=Node.Labels.zone", "another case"),
    ("spread=engine.labels.", "spreads over a node label"),
    ("spread=ENGINE.LABELS.zone", "another case"),
    ("spread=Engine.labels.zone", "another case"),
    ("spread=node.labels.a b", "bad key"),
])
def test_unknown_preferences_are_refused_naming_the_field(text: str, why: str) -> None:
    spec = ContainerSpec(image="x", name="web", preferences=["spread=node.labels.ok", text])
    with pytest.raises(InvalidArgument) as exc:
        validate_spec(spec)
    assert exc.value.details["field"] == "preferences[1]"
    assert why in exc.value.message


def test_preferences_need_a_job_name() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_spec(ContainerSpec(image="x", preferences=["spread=node.labels.zone"]))
    assert exc.value.details["field"] == "preferences"


def test_swarmkit_one_preference() -> None:
    # testPreferences: one node in az1, four in az2; 8 replicas, half to each zone.
    infos = [node("id1", az="az1"), *(node(f"id{i}", az="az2") for i in range(2, 6))]
    assert place(infos, job("spread=node.labels.az"), 8) == {
        "id1": 4, "id2": 1, "id3": 1, "id4": 1, "id5": 1}


def test_swarmkit_nested_preferences_and_a_full_branch() -> None:
    # testMultiplePreferences: 12 replicas reserving 200 MB over az, then rack. id0 is too
    # small; id1 takes 5 (az1's half, capped by memory); az2's 7 split 4/3 between racks.
    infos = [node("id0", memory=GB // 10, az="az1", rack="rack1"),
             node("id1", az="az1", rack="rack1"),
             *(node(f"id{i}", az="az2", rack="rack1") for i in (2, 3, 4)),
             *(node(f"id{i}", az="az2", rack="rack2") for i in (5, 6))]
    got = place(infos, job("spread=node.labels.az", "spread=node.labels.rack",
                           memory=2 * 10**8), 12)
    assert got["id0"] == 0 and got["id1"] == 5 and sum(got.values()) == 12
    rack1 = [got[f"id{i}"] for i in (2, 3, 4)]
    rack2 = [got[f"id{i}"] for i in (5, 6)]
    assert sorted((sum(rack1), sum(rack2))) == [3, 4]
    assert max(rack1) - min(rack1) <= 1 and max(rack2) - min(rack2) <= 1


def test_swarmkit_one_preference_over_engine_labels() -> None:
    # testPreferences again, the zones declared by the workers at start instead.
    infos = [node("id1", engine={"az": "az1"}),
             *(node(f"id{i}", engine={"az": "az2"}) for i in range(2, 6))]
    assert place(infos, job("spread=engine.labels.az"), 8) == {
        "id1": 4, "id2": 1, "id3": 1, "id4": 1, "id5": 1}


def test_engine_and_node_labels_of_one_name_are_spread_over_apart() -> None:
    # An operator relabelled n0 and n1 into zone a: node labels say a/a/b, the workers'
    # own declarations say a/b/b. Each preference reads its own.
    infos = [node("n0", zone="a", engine={"zone": "a"}),
             node("n1", zone="a", engine={"zone": "b"}),
             node("n2", zone="b", engine={"zone": "b"})]
    by_node = place(infos, job("spread=node.labels.zone"), 4)
    assert by_node["n0"] + by_node["n1"] == 2 and by_node["n2"] == 2
    by_engine = place(infos, job("spread=engine.labels.zone"), 4)
    assert by_engine["n0"] == 2 and by_engine["n1"] + by_engine["n2"] == 2


@pytest.mark.parametrize("strategy", ["spread", "binpack", "random"])
@pytest.mark.parametrize("sample", ["all", "log2"])
def test_nested_node_and_engine_label_preferences(strategy: str, sample: str) -> None:
    # Outer: the worker's declared region (r1: n0-n3, r2: n4-n5); inner: the operator's rack.
    infos = [node(f"n{i}", engine={"region": "r1" if i < 4 else "r2"}, rack=f"k{i % 2}")
             for i in range(6)]
    got = place(infos, job("spread=engine.labels.region", "spread=node.labels.rack"), 8,
                strategy=strategy, sample=sample)
    assert sum(got[f"n{i}"] for i in range(4)) == 4  # half per region
    for nodes in (range(0, 4), range(4, 6)):  # and within a region, half per rack
        assert sum(got[f"n{i}"] for i in nodes if i % 2 == 0) == \
            sum(got[f"n{i}"] for i in nodes if i % 2 == 1)


def test_one_call_per_replica_over_engine_labels_matches_the_naive_scheduler() -> None:
    infos = [node(f"n{i}", engine={"zone": "abc"[i % 3]} if i < 5 else None)
             for i in range(7)]
    spec = job("spread=engine.labels.zone")
    engine = PlacementEngine(ClusterSnapshot.build(infos, []))
    naive = NaiveScheduler(ClusterSnapshot.build(infos, []))
    for i in range(14):
        task = [Task(f"t{i}", spec)]
        assert engine.place_batch(task).node_of() == naive.place_batch(task).node_of()


@pytest.mark.parametrize(("labels", "n", "per_value"), [
    # (zone label per node, replicas, replicas per zone value; None: nodes without the label)
    (["a", "a", "a", "b"], 8, {"a": 4, "b": 4}),  # even over values, not over nodes
    (["a", "b", None, None], 9, {"a": 3, "b": 3, None: 3}),  # the unlabelled are one group
    (["a", "a", "b", "c"], 4, {"a": 2, "b": 1, "c": 1}),  # remainder: the strategy's choice
    (["a"], 3, {"a": 3}),
])
def test_replicas_spread_evenly_over_label_values(
        labels: list[str | None], n: int, per_value: dict[str | None, int]) -> None:
    infos = [node(f"n{i}", **({"zone": z} if z else {})) for i, z in enumerate(labels)]
    got = place(infos, job("spread=node.labels.zone"), n)
    by_value: Counter[str | None] = Counter()
    for i, z in enumerate(labels):
        by_value[z] += got[f"n{i}"]
    assert dict(by_value) == per_value


@pytest.mark.parametrize("strategy", ["spread", "binpack", "random"])
@pytest.mark.parametrize("sample", ["all", "log2", 0.5])
def test_every_strategy_and_sampling_honours_preferences(strategy: str,
                                                         sample: str | float) -> None:
    infos = [node(f"n{i}", zone="ab"[i % 2] if i < 6 else "c") for i in range(8)]
    got = place(infos, job("spread=node.labels.zone"), 30, strategy=strategy, sample=sample)
    per_zone = Counter({z: sum(got[f"n{i}"] for i in range(8)
                               if (("ab"[i % 2] if i < 6 else "c") == z)) for z in "abc"})
    assert sorted(per_zone.values()) == [10, 10, 10]


def test_replicas_already_running_count_towards_their_branch() -> None:
    infos = [node("n0", zone="a"), node("n1", zone="b")]
    running = [ContainerInfo(id=f"e{i}", name="web", node_id="n0", schedule_state="running",
                             spec=job("spread=node.labels.zone")) for i in range(3)]
    assert place(infos, job("spread=node.labels.zone"), 5, running) == {"n1": 4, "n0": 1}


def test_within_a_branch_the_strategy_decides() -> None:
    # binpack fills one node of each zone; spread would use both nodes of zone a.
    infos = [node("a1", zone="a"), node("a2", zone="a"), node("b1", zone="b")]
    spec = job("spread=node.labels.zone", memory=10**8)
    assert sorted(place(infos, spec, 4, strategy="binpack").values()) == [2, 2]
    assert sorted(place(infos, spec, 4, strategy="spread").values()) == [1, 1, 2]


def test_a_preference_never_overrides_a_filter() -> None:
    # Zone b cannot take the image's platform: all replicas go to zone a, none refused.
    infos = [node("a1", zone="a"),
             NodeInfo(id="b1", hostname="b1", status="ready", labels={"zone": "b"},
                      platform=Platform(os="windows", arch="amd64"),
                      capacity=NodeResources(millicpus=4000, memory=GB, pids=1000))]
    assert place(infos, job("spread=node.labels.zone"), 4) == {"a1": 4}


def test_one_call_per_replica_spreads_like_one_batch() -> None:
    infos = [node(f"n{i}", zone="abc"[i % 3]) for i in range(6)]
    engine = PlacementEngine(ClusterSnapshot.build(infos, []))
    spec = job("spread=node.labels.zone")
    zones: Counter[str] = Counter()
    for i in range(9):
        (a,) = engine.place_batch([Task(f"t{i}", spec)]).assignments
        zones["abc"[int(a.node_id[1:]) % 3]] += 1
    assert zones == {"a": 3, "b": 3, "c": 3}


def test_linked_containers_with_preferences_are_a_conflict() -> None:
    app = AppSpec(name="app", containers=[
        ContainerSpec(image="x", name="a", preferences=["spread=node.labels.zone"]),
        ContainerSpec(image="x", name="b", links=["a"])])
    engine = PlacementEngine(ClusterSnapshot.build([node("n0", zone="a")], []))
    result = engine.place_app(app)
    assert not result.assignments
    assert "preferences spread a job's replicas" in str(result.refusals[0].explanation)


def test_jobs_alike_but_for_their_name_are_counted_apart() -> None:
    # Specs equal but for the name once shared a class, and so the first job's counts.
    infos = [node("n0", zone="a"), node("n1", zone="b")]
    a, b = (ContainerSpec(image="x", name=name, preferences=["spread=node.labels.zone"],
                          max_per_node=3) for name in "ab")
    running = [ContainerInfo(id=f"e{i}", name="b", node_id="n0", schedule_state="running",
                             spec=b) for i in range(2)]
    tasks = [Task("a0", a), Task("a1", a), Task("b0", b), Task("b1", b)]
    engine = PlacementEngine(ClusterSnapshot.build(infos, running))
    where = {x.task_id: x.node_id for x in engine.place_batch(tasks).assignments}
    assert sorted((where["a0"], where["a1"])) == ["n0", "n1"]
    assert (where["b0"], where["b1"]) == ("n1", "n1")  # zone a holds b's two already
