"""A scheduler with simulated agents: joins, jobs placed and acknowledged, the verbs."""

from __future__ import annotations

from collections import Counter

import pytest

from bench._simagent import SimAgent
from protocol.errors import Conflict, NotFound, Unavailable, Unsupported
from protocol.messages import (
    ContainerCreated,
    ContainerInspected,
    ContainerList,
    CreateContainer,
    InspectContainer,
    ListContainers,
    ListNodes,
    NodeList,
    Ok,
    RemoveContainer,
    StartContainer,
    StopContainer,
    SubmitJob,
    Submitted,
    UpdateNode,
)
from protocol.specs import ContainerSpec, Platform, Resources, RestartPolicy
from scheduler.cluster.cycle import GENERATION_SPAN
from scheduler.store import CONTAINERS, EmbeddedEtcd, EtcdClient, Layout, Store
from tests.helpers.in_process_cluster import agents, ask, scheduler
from tests.helpers.store_fixtures import Runner


def running_total(pool: dict[str, SimAgent]) -> Counter[str]:
    return Counter(cid for a in pool.values() for cid in a.running())


def test_join_records_ready_nodes_and_heartbeats_keep_them(run: Runner[None],
                                                           etcd: EmbeddedEtcd,
                                                           layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"]):
                nodes = await ask(s.address, lambda r: ListNodes(reply=r))
                assert isinstance(nodes, NodeList)
                assert {(n.id, n.status, n.epoch) for n in nodes.nodes} == {
                    ("a", "ready", 1), ("b", "ready", 1)}
                leader = s.api.leader
                assert leader is not None
                # Heartbeats keep arriving: wait for several full reconcile rounds to pass
                # (each would mark a silent node down) and check nobody went down.
                start = leader.cycles
                seen = leader.last_seen["a"]
                await leader.until(lambda ld: ld.last_seen["a"] > seen + 1.5)
                assert leader.cycles > start
                assert {n.id for n in (await ask(s.address, lambda r: ListNodes(
                    filters={"status": "ready"}, reply=r))).nodes} == {"a", "b"}  # type: ignore[attr-defined]

    run(body)


def test_job_spread_honours_constraints_and_platforms(run: Runner[None], etcd: EmbeddedEtcd,
                                                      layout: Layout) -> None:
    labels = {"a": {"zone": "x"}, "b": {"zone": "x"}, "c": {"zone": "y"}, "w": {"zone": "x"}}
    platforms = {"w": ("windows", "amd64")}

    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b", "c", "w"], labels=labels,
                              platforms=platforms) as pool:
                spec = ContainerSpec(image="busybox", name="web",
                                     constraints=["node.labels.zone==x"],
                                     platform=Platform(os="linux", arch="amd64"))
                reply = await ask(s.address, lambda r: SubmitJob(spec=spec, replicas=6,
                                                                  reply=r))
                assert isinstance(reply, Submitted)
                assert reply.ids == [f"web.{i}" for i in range(1, 7)]
                assert reply.refused == ""
                await pool["a"].until(lambda _: sum(running_total(pool).values()) == 6)
                per_node = {name: len(agent.running()) for name, agent in pool.items()}
                assert per_node == {"a": 3, "b": 3, "c": 0, "w": 0}  # spread, zone x, linux
                assert running_total(pool) == Counter({f"web.{i}": 1 for i in range(1, 7)})

                listed = await ask(s.address, lambda r: ListContainers(reply=r))
                assert isinstance(listed, ContainerList)
                rows = {c.id: c for c in listed.containers}
                assert set(rows) == set(reply.ids)
                for cid, row in rows.items():
                    assert cid in pool[row.node_id].running()
                # Acknowledgements reach etcd as the scheduler's observed state.
                async with EtcdClient([etcd.endpoint]) as client:
                    store = Store(client, layout)
                    states = {r.id: r.value.schedule_state
                              async for r in store.list(CONTAINERS)}
                assert set(states.values()) <= {"assigned", "running"}
                inspected = await ask(s.address, lambda r: InspectContainer(id="web.1",
                                                                            reply=r))
                assert isinstance(inspected, ContainerInspected)
                assert inspected.info.node_id in ("a", "b")
                assert inspected.info.generation % GENERATION_SPAN == 1  # placed once
                assert inspected.info.placement.startswith("spread: node ")

    run(body)


def test_impossible_constraints_are_refused_with_the_engine_explanation(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"], labels={"a": {"zone": "x"}}):
                spec = ContainerSpec(image="busybox", name="nope",
                                     constraints=["node.labels.zone==mars"])
                reply = await ask(s.address, lambda r: SubmitJob(spec=spec, replicas=2,
                                                                  reply=r))
                assert isinstance(reply, Submitted)
                assert reply.ids == []
                assert "0/2 nodes available" in reply.refused
                with pytest.raises(Unavailable, match="0/2 nodes available") as err:
                    await ask(s.address, lambda r: CreateContainer(spec=spec, reply=r))
                assert "placement" in err.value.details
                big = ContainerSpec(image="busybox", name="big",
                                    resources=Resources(memory=1 << 50))
                with pytest.raises(Unavailable, match="memory"):
                    await ask(s.address, lambda r: CreateContainer(spec=big, reply=r))
                listed = await ask(s.address, lambda r: ListContainers(all=True, reply=r))
                assert isinstance(listed, ContainerList)
                assert listed.containers == []  # a refusal records nothing
                # A Windows container asks for a bridge: the host network is all it can have.
                windows = ContainerSpec(image="busybox", name="win", network="bridge",
                                        platform=Platform(os="windows", arch="amd64"))
                with pytest.raises(Unsupported, match="host's network only"):
                    await ask(s.address, lambda r: CreateContainer(spec=windows, reply=r))

    run(body)


def test_max_per_node_spreads_a_job_and_explains_the_rest(run: Runner[None],
                                                         etcd: EmbeddedEtcd,
                                                         layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"]) as pool:
                spec = ContainerSpec(image="busybox", name="one-each", max_per_node=1)
                reply = await ask(s.address, lambda r: SubmitJob(spec=spec, replicas=3,
                                                                  reply=r))
                assert isinstance(reply, Submitted)
                assert len(reply.ids) == 2
                assert "job one-each has its 1 per node here already" in reply.refused
                await pool["a"].until(lambda agent: len(agent.running()) == 1)
                await pool["b"].until(lambda agent: len(agent.running()) == 1)

    run(body)


def test_create_start_stop_remove_and_drain(run: Runner[None], etcd: EmbeddedEtcd,
                                            layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"]) as pool:
                spec = ContainerSpec(image="busybox", name="one")
                created = await ask(s.address, lambda r: CreateContainer(spec=spec, reply=r))
                assert created == ContainerCreated(id="one")
                with pytest.raises(Conflict):
                    await ask(s.address, lambda r: CreateContainer(spec=spec, reply=r))
                assert running_total(pool) == Counter()  # created, not started
                assert await ask(s.address, lambda r: StartContainer(id="one", reply=r)) == Ok()
                await pool["a"].until(lambda _: running_total(pool) == Counter({"one": 1}))
                holder = next(n for n, a in pool.items() if "one" in a.running())
                with pytest.raises(Conflict, match="running"):
                    await ask(s.address, lambda r: RemoveContainer(id="one", reply=r))
                assert await ask(s.address, lambda r: StopContainer(id="one", reply=r)) == Ok()
                await pool[holder].until(lambda a: "one" not in a.running())
                # Drain the node that ran it: a restart must go to the other one.
                assert await ask(s.address, lambda r: UpdateNode(
                    node_id=holder, availability="drain", reply=r)) == Ok()
                assert await ask(s.address, lambda r: StartContainer(id="one", reply=r)) == Ok()
                other = next(n for n in pool if n != holder)
                await pool[other].until(
                    lambda a: a.running().get("one", 0) % GENERATION_SPAN == 2)
                assert await ask(s.address, lambda r: RemoveContainer(
                    id="one", force=True, reply=r)) == Ok()
                await pool[other].until(lambda a: "one" not in a.running())
                with pytest.raises(NotFound):
                    await ask(s.address, lambda r: InspectContainer(id="one", reply=r))
                with pytest.raises(NotFound):
                    await ask(s.address, lambda r: UpdateNode(node_id="ghost",
                                                              availability="drain", reply=r))

    run(body)


def test_drain_moves_what_may_move_and_keeps_the_rest(run: Runner[None], etcd: EmbeddedEtcd,
                                                      layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"]) as pool:
                movable = ContainerSpec(image="busybox", name="web",
                                        restart=RestartPolicy(name="always"))
                fixed = ContainerSpec(image="busybox", name="batch")
                for spec in (movable, fixed):
                    submitted = await ask(s.address, lambda r, sp=spec: SubmitJob(  # type: ignore[misc]
                        spec=sp, replicas=1, reply=r))
                    assert isinstance(submitted, Submitted)
                await pool["a"].until(lambda _: running_total(pool) == Counter(
                    {"web.1": 1, "batch.1": 1}))
                holder = next(n for n, a in pool.items() if "web.1" in a.running())
                other = next(n for n in pool if n != holder)
                pinned = next(n for n, a in pool.items() if "batch.1" in a.running())
                assert await ask(s.address, lambda r: UpdateNode(
                    node_id=holder, availability="drain", reply=r)) == Ok()
                # The movable one moves under a new generation; the old copy is stopped.
                await pool[other].until(lambda a: a.running().get("web.1", 0) >= 2)
                await pool[holder].until(lambda a: "web.1" not in a.running())
                assert running_total(pool)["web.1"] == 1
                assert "batch.1" in pool[pinned].running()  # no restart policy: it stays

    run(body)
