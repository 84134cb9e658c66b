"""Nodes that leave and return, names used again: ``node rm``, an orphan whose node comes back
with its word, a job's name reused after removal, a node address nobody could reach."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import msgspec
import pytest

import channels
from bench._simagent import SimAgent, sim_node
from protocol.errors import Conflict, InvalidArgument, NotFound
from protocol.messages import (
    ContainerList,
    Join,
    ListContainers,
    ListNodes,
    NodeList,
    Ok,
    RemoveContainer,
    RemoveNode,
    SubmitJob,
    Submitted,
)
from protocol.specs import ContainerSpec, RestartPolicy
from scheduler.cluster.leader import Leader
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import CHANNELS, agents, ask, scheduler
from tests.helpers.store_fixtures import Runner
from worker.agent.state import ContainerChanged


@contextlib.asynccontextmanager
async def running(agent: SimAgent) -> AsyncIterator[SimAgent]:
    """The agent joined while the block runs; killed (its connection dropped) after it."""
    task = asyncio.create_task(agent.run())
    try:
        await agent.joined.wait()
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def submit(address: str, spec: ContainerSpec, replicas: int) -> list[str]:
    reply = await ask(address, lambda r: SubmitJob(spec=spec, replicas=replicas, reply=r))
    assert isinstance(reply, Submitted) and len(reply.ids) == replicas, reply
    return reply.ids


def state(leader: Leader, cid: str) -> str:
    entry = leader.containers.get(cid)
    return entry.record.schedule_state if entry is not None else "gone"


def test_a_job_name_is_reusable_after_its_containers_are_removed(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    spec = ContainerSpec(image="busybox", name="web")

    async def body() -> None:
        async with scheduler(etcd, layout) as s, agents([s.address], ["a", "b"]) as pool:
            await s.leading.wait()

            def copies() -> Counter[str]:
                return Counter(cid for a in pool.values() for cid in a.running())

            ids = await submit(s.address, spec, 3)
            await pool["a"].until(lambda _: copies() == Counter(ids))
            for cid in ids:
                assert await ask(s.address, lambda r, c=cid: RemoveContainer(  # type: ignore[misc]
                    id=c, force=True, reply=r)) == Ok()
            await pool["a"].until(lambda _: not copies())
            leader = s.api.leader
            assert leader is not None
            await leader.until(lambda ld: all(cid not in ld.containers for cid in ids))
            # Every worker has fenced web.N at the removed generation: the new web.N must
            # still be accepted, as new containers.
            assert await submit(s.address, spec, 3) == ids
            await pool["a"].until(lambda _: copies() == Counter(ids))
            # Again, this time before the removed records are even deleted.
            for cid in ids:
                await ask(s.address, lambda r, c=cid: RemoveContainer(  # type: ignore[misc]
                    id=c, force=True, reply=r))
            assert await submit(s.address, spec, 3) == ids
            await pool["a"].until(lambda _: copies() == Counter(ids))
            assert all(not a.refused for a in pool.values())

    run(body)


def test_an_orphan_takes_the_state_its_returning_node_reports(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            leader = s.api.leader
            assert leader is not None
            agent = SimAgent(sim_node("a"), [s.address], options=CHANNELS)
            async with running(agent):
                ids = await submit(s.address, ContainerSpec(image="busybox", name="once"), 2)
                await leader.until(lambda ld: all(state(ld, c) == "running" for c in ids))
            # The node is lost: restart policy "no" leaves its containers orphaned.
            await leader.until(lambda ld: all(state(ld, c) == "orphaned" for c in ids))
            # Meanwhile one of them exits on the node, with code 3; the other runs on.
            agent.state.handle(ContainerChanged(ids[0], "exited", 3, "test-1"))
            async with running(agent):
                await leader.until(lambda ld: state(ld, ids[0]) == "exited"
                                   and state(ld, ids[1]) == "running")
                listed = await ask(s.address, lambda r: ListContainers(all=True, reply=r))
                assert isinstance(listed, ContainerList)
                states = {c.id: (c.state.status, c.state.exit_code) for c in listed.containers}
                assert states[ids[0]] == ("exited", 3)
                assert states[ids[1]][0] == "running"

    run(body)


def test_node_rm_forgets_a_departed_node_and_its_containers_move(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    movable = ContainerSpec(image="busybox", name="svc", restart=RestartPolicy(name="always"),
                            constraints=["node.labels.role==b"])
    pinned = ContainerSpec(image="busybox", name="batch", constraints=["node.labels.role==b"])

    async def nodes(address: str) -> set[str]:
        listed = await ask(address, lambda r: ListNodes(reply=r))
        assert isinstance(listed, NodeList)
        return {n.id for n in listed.nodes}

    async def body() -> None:
        async with scheduler(etcd, layout) as s, contextlib.AsyncExitStack() as stack:
            await s.leading.wait()
            leader = s.api.leader
            assert leader is not None
            b = SimAgent(sim_node("b", labels={"role": "b"}), [s.address], options=CHANNELS)
            c = SimAgent(sim_node("c", labels={"role": "b"}), [s.address], options=CHANNELS)
            await stack.enter_async_context(running(SimAgent(sim_node("a"), [s.address],
                                                             options=CHANNELS)))
            async with running(b):
                with pytest.raises(Conflict, match="--force"):
                    await ask(s.address, lambda r: RemoveNode(node_id="b", reply=r))
                svc = await submit(s.address, movable, 1)  # b is the only node they fit
                batch = await submit(s.address, pinned, 1)
                await b.until(lambda ag: set(ag.running()) == {*svc, *batch})
                await stack.enter_async_context(running(c))
            # b's worker is gone, its node not yet down: only --force removes it.
            with pytest.raises(Conflict, match="--force"):
                await ask(s.address, lambda r: RemoveNode(node_id="b", reply=r))
            assert await ask(s.address, lambda r: RemoveNode(
                node_id="b", force=True, reply=r)) == Ok()
            assert await nodes(s.address) == {"a", "c"}
            # Its containers are handled as on the node's loss: moved, or orphaned.
            await c.until(lambda ag: set(ag.running()) == set(svc))
            await leader.until(lambda ld: state(ld, batch[0]) == "orphaned")
            assert "was removed" in leader.containers[batch[0]].record.placement
            await stack.aclose()  # a and c are lost: once down, no --force is needed
            await leader.until(lambda ld: ld.nodes["c"].record.info.status == "down")
            assert await ask(s.address, lambda r: RemoveNode(node_id="c", reply=r)) == Ok()
            assert await nodes(s.address) == {"a"}
            with pytest.raises(NotFound):
                await ask(s.address, lambda r: RemoveNode(node_id="ghost", reply=r))

    run(body)


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:7376", "tcp://[::]:7376", "tcp://*:7376",
                                     "tcp://10.0.0.5", "http://10.0.0.5:80", "inproc://w"])
def test_a_join_naming_an_unreachable_address_is_refused(run: Runner[None], etcd: EmbeddedEtcd,
                                                         layout: Layout, address: str) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            commands, _ = channels.pipe()
            node = msgspec.structs.replace(sim_node("w"), address=address)
            with pytest.raises(InvalidArgument, match="cannot be reached"):
                await ask(s.address, lambda r: Join(node=node, commands=commands, reply=r))

    run(body)
