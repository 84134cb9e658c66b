"""The reconciler: table cases, and a simulation under random partitions and returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.observed import NodeInfo
from protocol.specs import ContainerSpec, RestartPolicy
from scheduler.reconcile import Observe, Orphan, Report, Reschedule, StopStale, reconcile
from scheduler.store.records import ContainerRecord, NodeRecord

TIMEOUT = 10.0


def node(node_id: str, last_seen: float = 100.0, status: str = "ready") -> NodeRecord:
    return NodeRecord(info=NodeInfo(id=node_id, status=status), last_seen=last_seen)  # type: ignore[arg-type]


def container(policy: str = "always", **fields: object) -> ContainerRecord:
    spec = ContainerSpec(image="busybox", restart=RestartPolicy(name=policy))  # type: ignore[arg-type]
    return ContainerRecord(spec=spec, **fields)  # type: ignore[arg-type]


def test_pending_containers_are_placed_and_healthy_ones_left_alone() -> None:
    actions = reconcile(
        {"a": container(), "b": container(schedule_state="running", node_id="n1", generation=1)},
        {"n1": node("n1")}, [Report("n1", "b", 1, "running")], now=105.0, node_timeout=TIMEOUT)
    assert actions.place == ["a"]
    assert not actions.reschedule
    assert not actions.stop
    assert not actions.observe


def test_a_silent_node_goes_down_and_its_containers_move_or_are_orphaned() -> None:
    containers = {
        "keep": container("always", schedule_state="running", node_id="n1", generation=3),
        "once": container("no", schedule_state="running", node_id="n1", generation=1),
        "other": container("always", schedule_state="running", node_id="n2", generation=1),
    }
    nodes = {"n1": node("n1", last_seen=80.0), "n2": node("n2", last_seen=99.0)}
    actions = reconcile(containers, nodes, [], now=100.0, node_timeout=TIMEOUT)
    assert actions.nodes_down == ["n1"]
    assert actions.reschedule == [Reschedule("keep", "n1", 4)]
    assert actions.orphan == [Orphan("once", "n1",
                                     "node n1 is down and the restart policy is no")]


def test_an_orphan_takes_what_its_returning_node_reports() -> None:
    orphan = {"generation": 2, "schedule_state": "orphaned", "node_id": "n1"}
    containers = {"gone": container("no", **orphan), "alive": container("no", **orphan),
                  "moved": container("no", **{**orphan, "node_id": "n2"})}
    reports = [Report("n1", "gone", 2, "exited"), Report("n1", "alive", 2, "running"),
               Report("n1", "moved", 2, "exited")]
    actions = reconcile(containers, {"n1": node("n1"), "n2": node("n2")}, reports,
                        now=100.0, node_timeout=TIMEOUT)
    assert actions.observe == [Observe("alive", "running"), Observe("gone", "exited")]
    assert not actions.stop  # a stale copy that has exited needs no stop


def test_a_drained_node_gives_up_what_may_move() -> None:
    containers = {
        "web": container("always", schedule_state="running", node_id="n1", generation=2),
        "batch": container("no", schedule_state="running", node_id="n1", generation=1),
        "elsewhere": container("always", schedule_state="running", node_id="n2", generation=1),
    }
    drained = NodeRecord(info=NodeInfo(id="n1", status="ready", availability="drain"),
                         last_seen=100.0)
    actions = reconcile(containers, {"n1": drained, "n2": node("n2")}, [], now=100.0,
                        node_timeout=TIMEOUT)
    assert actions.reschedule == [Reschedule("web", "n1", 3)]
    assert not actions.orphan
    assert not actions.nodes_down


def test_a_returning_node_is_told_to_stop_what_moved_away() -> None:
    containers = {"c": container(schedule_state="running", node_id="n2", generation=2)}
    reports = [Report("n1", "c", 1, "running"), Report("n2", "c", 2, "running")]
    actions = reconcile(containers, {"n1": node("n1"), "n2": node("n2")}, reports, now=100.0,
                        node_timeout=TIMEOUT)
    assert actions.stop == [StopStale("n1", "c", 1, "the container now belongs to node n2")]


def test_reports_move_the_view_forward_only() -> None:
    containers = {"c": container(schedule_state="running", node_id="n1", generation=1)}
    forward = reconcile(containers, {"n1": node("n1")}, [Report("n1", "c", 1, "exited")],
                        now=100.0, node_timeout=TIMEOUT)
    assert [(o.container_id, o.schedule_state) for o in forward.observe] == [("c", "exited")]
    back = reconcile(containers, {"n1": node("n1")}, [Report("n1", "c", 1, "created")],
                     now=100.0, node_timeout=TIMEOUT)
    assert not back.observe


def test_removal_waits_until_no_copy_runs() -> None:
    containers = {"c": container(desired="removed", schedule_state="running", node_id="n1",
                                 generation=1)}
    running = reconcile(containers, {"n1": node("n1")}, [Report("n1", "c", 1, "running")],
                        now=100.0, node_timeout=TIMEOUT)
    assert [s.node_id for s in running.stop] == ["n1"]
    assert not running.delete
    gone = reconcile(containers, {"n1": node("n1")}, [Report("n1", "c", 1, "exited")],
                     now=100.0, node_timeout=TIMEOUT)
    assert not gone.delete  # the node still holds it: the stop removes it first
    assert [s.node_id for s in gone.stop] == ["n1"]
    done = reconcile({"c": container(desired="removed", schedule_state="exited",
                                     node_id="n1", generation=1)},
                     {"n1": node("n1")}, [], now=100.0, node_timeout=TIMEOUT)
    assert done.delete == ["c"]


def test_unknown_and_future_generations_are_stopped() -> None:
    containers = {"c": container(schedule_state="running", node_id="n1", generation=1)}
    reports = [Report("n1", "ghost", 1, "running"), Report("n1", "c", 9, "running")]
    actions = reconcile(containers, {"n1": node("n1")}, reports, now=100.0,
                        node_timeout=TIMEOUT)
    assert {(s.container_id, s.generation) for s in actions.stop} == {("ghost", 1), ("c", 9)}


# --- simulation ----------------------------------------------------------------------------------
@dataclass
class Cluster:
    """The truth a test can see: records in etcd, and what each worker really runs."""

    records: dict[str, ContainerRecord]
    nodes: dict[str, NodeRecord]
    running: dict[str, set[tuple[str, int]]]
    partitioned: set[str] = field(default_factory=set)
    now: float = 0.0

    def step(self) -> None:
        for node_id in self.nodes:
            if node_id not in self.partitioned and self.nodes[node_id].info.status != "down":
                self.nodes[node_id] = NodeRecord(info=self.nodes[node_id].info, last_seen=self.now)
        reports = [Report(n, cid, gen, "running") for n, held in self.running.items()
                   if n not in self.partitioned for cid, gen in held]
        actions = reconcile(self.records, self.nodes, reports, now=self.now,
                            node_timeout=TIMEOUT)
        for node_id in actions.nodes_down:
            info = self.nodes[node_id].info
            self.nodes[node_id] = NodeRecord(
                info=NodeInfo(id=info.id, status="down"), last_seen=self.nodes[node_id].last_seen)
        for move in actions.reschedule:
            old = self.records[move.container_id]
            self.records[move.container_id] = ContainerRecord(
                spec=old.spec, schedule_state="pending", generation=move.generation)
        for orphan in actions.orphan:
            old = self.records[orphan.container_id]
            self.records[orphan.container_id] = ContainerRecord(
                spec=old.spec, schedule_state="orphaned", node_id=old.node_id,
                generation=old.generation)
        for stop in actions.stop:
            if stop.node_id not in self.partitioned:
                self.running[stop.node_id].discard((stop.container_id, stop.generation))
        ready = sorted(n for n, r in self.nodes.items()
                       if r.info.status == "ready" and n not in self.partitioned)
        for i, cid in enumerate(actions.place):
            if not ready:
                break
            old = self.records[cid]
            target = ready[i % len(ready)]
            generation = old.generation + (0 if old.generation and not old.node_id else 1)
            self.records[cid] = ContainerRecord(spec=old.spec, schedule_state="assigned",
                                                node_id=target, generation=max(generation, 1))
        # Workers start what is assigned to them (they refuse nothing newer than they know).
        for cid, record in self.records.items():
            if record.schedule_state in ("assigned", "running") and \
                    record.node_id not in self.partitioned:
                self.running[record.node_id].add((cid, record.generation))
        self.now += 1.0


EVENTS = st.lists(
    st.tuples(st.sampled_from(["partition", "heal", "tick"]), st.integers(0, 2)),
    max_size=30)


@settings(max_examples=150, deadline=None)
@given(EVENTS, st.lists(st.sampled_from(["always", "no", "on-failure"]), min_size=1,
                        max_size=6))
def test_no_container_is_lost_or_duplicated_once_the_cluster_heals(
        events: list[tuple[str, int]], policies: list[str]) -> None:
    cluster = Cluster(
        records={f"c{i}": container(p) for i, p in enumerate(policies)},
        nodes={f"n{i}": node(f"n{i}", last_seen=0.0) for i in range(3)},
        running={f"n{i}": set() for i in range(3)},
    )
    for kind, which in events:
        node_id = f"n{which}"
        if kind == "partition" and len(cluster.partitioned) < 2:
            cluster.partitioned.add(node_id)
        elif kind == "heal":
            cluster.partitioned.discard(node_id)
        for _ in range(1 if kind != "tick" else 6):
            cluster.step()
    # Heal everything; nodes that went down rejoin as new (their old copies get fenced).
    cluster.partitioned.clear()
    for node_id, record in cluster.nodes.items():
        if record.info.status == "down":
            cluster.nodes[node_id] = NodeRecord(info=NodeInfo(id=node_id, status="ready"),
                                                last_seen=cluster.now)
    for _ in range(5):
        cluster.step()
    for cid, record in cluster.records.items():
        copies = [(n, gen) for n, held in cluster.running.items() for c, gen in held
                  if c == cid]
        if record.schedule_state == "orphaned":
            assert record.spec.restart.name == "no"
            assert len(copies) <= 1  # visible as lost; never a second copy
            continue
        assert copies == [(record.node_id, record.generation)], (cid, record, copies)


def test_a_drained_node_keeps_its_exclusive_containers_and_a_lost_one_gives_them_up() -> None:
    exclusive = ContainerSpec(image="busybox", restart=RestartPolicy(name="always"),
                              exclusive=True)
    running = {"schedule_state": "running", "node_id": "n1", "generation": 2}
    containers = {"ex": ContainerRecord(spec=exclusive, **running),  # type: ignore[arg-type]
                  "plain": container("always", **running)}
    drained = NodeRecord(info=NodeInfo(id="n1", status="ready", availability="drain"),
                         last_seen=100.0)
    actions = reconcile(containers, {"n1": drained}, [], now=100.0, node_timeout=TIMEOUT)
    assert actions.reschedule == [Reschedule("plain", "n1", 3)]  # ex would run twice a while
    lost = reconcile(containers, {"n1": node("n1", last_seen=80.0)}, [], now=100.0,
                     node_timeout=TIMEOUT)
    assert lost.reschedule == [Reschedule("ex", "n1", 3), Reschedule("plain", "n1", 3)]
