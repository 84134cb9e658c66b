"""Cluster verbs with simulated agents: apps (all or nothing), node labels, inspect, drain,
and the cluster event stream."""

from __future__ import annotations

import pytest

import channels
from protocol.errors import Conflict, NotFound, Unavailable
from protocol.messages import (
    ContainerList,
    CreateContainers,
    EventMessage,
    InspectNode,
    LabelNode,
    ListContainers,
    ListNodes,
    NodeInspected,
    NodeList,
    Ok,
    SubmitApp,
    SubmitJob,
    Submitted,
    UpdateNode,
    WatchEvents,
)
from protocol.specs import AppSpec, ContainerSpec, Resources
from scheduler.cluster.node_work import effective_labels
from scheduler.store import APPS, CONTAINERS, EmbeddedEtcd, EtcdClient, Layout, Store
from tests.helpers.in_process_cluster import CHANNELS, agents, ask, scheduler
from tests.helpers.store_fixtures import Runner

GIB = 1 << 30


def test_effective_labels_operator_wins() -> None:
    assert effective_labels({"a": "1", "b": "2"}, {"b": "9", "c": "3"}, ["a"]) == {
        "b": "9", "c": "3"}
    assert effective_labels({"a": "1"}, {}, []) == {"a": "1"}


def test_app_all_or_nothing_and_partial(run: Runner[None], etcd: EmbeddedEtcd,
                                        layout: Layout) -> None:
    big = Resources(memory=6 * GIB)

    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"]) as pool:  # 8 GiB each
                # Three 6 GiB containers on two 8 GiB nodes: all or nothing records nothing.
                app = AppSpec(name="shop", all_or_nothing=True, containers=[
                    ContainerSpec(image="busybox", name=f"svc{i}", resources=big)
                    for i in range(3)])
                with pytest.raises(Unavailable, match="all or nothing"):
                    await ask(s.address, lambda r: SubmitApp(app=app, reply=r))
                async with EtcdClient([etcd.endpoint]) as client:
                    store = Store(client, layout)
                    assert await store.get(APPS, "shop") is None
                    assert [r.id async for r in store.list(CONTAINERS)] == []
                # The same app without all_or_nothing: two placed, one reported.
                partial = AppSpec(name="shop", containers=app.containers)
                reply = await ask(s.address, lambda r: SubmitApp(app=partial, reply=r))
                assert isinstance(reply, Submitted)
                assert len(reply.ids) == 2 and "1 of 3 not placed" in reply.refused
                assert all(cid.startswith("shop.svc") for cid in reply.ids)
                await pool["a"].until(lambda _: sum(
                    len(a.running()) for a in pool.values()) == 2)
                async with EtcdClient([etcd.endpoint]) as client:
                    record = await Store(client, layout).get(APPS, "shop")
                    assert record is not None and record.value.container_ids == reply.ids
                with pytest.raises(Conflict):
                    await ask(s.address, lambda r: SubmitApp(app=partial, reply=r))
                # An unnamed container of an app is APP.N; a small app fits whole.
                small = AppSpec(name="tiny", all_or_nothing=True, containers=[
                    ContainerSpec(image="busybox"), ContainerSpec(image="busybox", name="db")])
                reply = await ask(s.address, lambda r: SubmitApp(app=small, reply=r))
                assert isinstance(reply, Submitted) and reply.ids == ["tiny.1", "tiny.db"]

    run(body)


def test_node_labels_constraints_inspect_and_drain(run: Runner[None], etcd: EmbeddedEtcd,
                                                   layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"], labels={"a": {"old": "x"}}) as pool:
                spec = ContainerSpec(image="busybox", name="gpu",
                                     constraints=["node.labels.gpu==yes"],
                                     resources=Resources(millicpus=500, memory=GIB))
                refused = await ask(s.address, lambda r: SubmitJob(spec=spec, reply=r))
                assert isinstance(refused, Submitted) and refused.ids == []
                assert "not placed" in refused.refused

                labelled = await ask(s.address, lambda r: LabelNode(
                    node_id="b", add={"gpu": "yes"}, reply=r))
                assert isinstance(labelled, NodeInspected)
                assert labelled.info.labels == {"gpu": "yes"}
                removed = await ask(s.address, lambda r: LabelNode(
                    node_id="a", remove=["old"], reply=r))
                assert isinstance(removed, NodeInspected) and removed.info.labels == {}
                with pytest.raises(NotFound):
                    await ask(s.address, lambda r: LabelNode(node_id="nope", add={"k": "v"},
                                                             reply=r))

                placed = await ask(s.address, lambda r: SubmitJob(spec=spec, replicas=2,
                                                                  reply=r))
                assert isinstance(placed, Submitted) and placed.ids == ["gpu.1", "gpu.2"]
                await pool["b"].until(lambda a: len(a.running()) == 2)
                assert pool["a"].running() == {}

                inspected = await ask(s.address, lambda r: InspectNode(node_id="b", reply=r))
                assert isinstance(inspected, NodeInspected)
                assert inspected.containers == ["gpu.1", "gpu.2"]
                assert (inspected.usage.millicpus, inspected.usage.memory,
                        inspected.usage.containers) == (1000, 2 * GIB, 2)
                nodes = await ask(s.address, lambda r: ListNodes(reply=r))
                assert isinstance(nodes, NodeList)
                assert nodes.usage["b"].containers == 2 and "a" not in nodes.usage

                # The operator's labels survive the worker joining again with its own.
                leader = s.api.leader
                assert leader is not None
                joins = pool["a"].joins
                leader.sessions["a"].end("test: make node a join again")
                await pool["a"].until(lambda a: a.joins > joins and a.joined.is_set())
                again = await ask(s.address, lambda r: InspectNode(node_id="a", reply=r))
                assert isinstance(again, NodeInspected) and again.info.labels == {}

                # Drain b: running containers stay, new ones go nowhere.
                assert isinstance(await ask(s.address, lambda r: UpdateNode(
                    node_id="b", availability="drain", reply=r)), Ok)
                more = await ask(s.address, lambda r: SubmitJob(
                    spec=ContainerSpec(image="busybox", name="more",
                                       constraints=["node.labels.gpu==yes"]), reply=r))
                assert isinstance(more, Submitted) and more.ids == []
                listed = await ask(s.address, lambda r: ListContainers(reply=r))
                assert isinstance(listed, ContainerList)
                assert sorted(c.id for c in listed.containers) == ["gpu.1", "gpu.2"]
                assert isinstance(await ask(s.address, lambda r: UpdateNode(
                    node_id="b", availability="active", reply=r)), Ok)
                more = await ask(s.address, lambda r: SubmitJob(
                    spec=ContainerSpec(image="busybox", name="more",
                                       constraints=["node.labels.gpu==yes"]), reply=r))
                assert isinstance(more, Submitted) and more.ids == ["more.1"]

    run(body)


def test_cluster_events_stream(run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with await channels.connect(s.address, CHANNELS) as client:
                events_tx, events = channels.pipe()
                await client.sender.send(WatchEvents(filters={"type": "container"},
                                                     reply=events_tx))
                async with agents([s.address], ["a"]):
                    await ask(s.address, lambda r: SubmitJob(
                        spec=ContainerSpec(image="busybox", name="ev"), reply=r))
                    seen: list[tuple[str, str]] = []
                    while ("ev.1", "start") not in seen:
                        message = await events.recv()
                        assert isinstance(message, EventMessage)
                        assert message.event.type == "container"
                        seen.append((message.event.id, message.event.action))
                    assert seen.index(("ev.1", "placed")) < seen.index(("ev.1", "start"))
                events.close()
            await s.api.leader.until(  # type: ignore[union-attr]
                lambda _: s.api.events.subscribers == 0)

    run(body)


def test_containers_created_together_are_all_placed_or_none(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    big = Resources(memory=6 * GIB)

    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b"]) as pool:  # 8 GiB each
                # Three 6 GiB containers on two 8 GiB nodes: nothing is created, and the
                # refusal names the container that found no node and why.
                specs = [ContainerSpec(image="busybox", name=f"shop-svc{i}", resources=big)
                         for i in range(3)]
                with pytest.raises(Unavailable, match=r"^nothing created \(all or nothing\): "
                                                      r"shop-svc\d found no node: 0/2 nodes "
                                                      r"available: 2 insufficient memory") as e:
                    await ask(s.address, lambda r: CreateContainers(specs=specs, reply=r))
                assert e.value.details["refused"].startswith("shop-svc")
                async with EtcdClient([etcd.endpoint]) as client:
                    assert [r.id async for r in Store(client, layout).list(CONTAINERS)] == []
                # Two fit: both created, none started (no agent runs anything).
                reply = await ask(s.address, lambda r: CreateContainers(specs=specs[:2],
                                                                        reply=r))
                assert isinstance(reply, Submitted)
                assert reply.ids == ["shop-svc0", "shop-svc1"]
                listed = await ask(s.address, lambda r: ListContainers(all=True, reply=r))
                assert isinstance(listed, ContainerList)
                assert sorted(c.name for c in listed.containers) == reply.ids
                assert all(c.state.status == "created" for c in listed.containers)
                assert all(not a.running() for a in pool.values())
                # A name in use refuses the whole creation.
                with pytest.raises(Conflict, match="shop-svc1 already exists"):
                    await ask(s.address, lambda r: CreateContainers(specs=[
                        ContainerSpec(image="busybox", name="shop-new"), specs[1]], reply=r))
                listed = await ask(s.address, lambda r: ListContainers(all=True, reply=r))
                assert isinstance(listed, ContainerList) and len(listed.containers) == 2

    run(body)
