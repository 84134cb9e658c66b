"""Global jobs on a cluster (simulated agents, real scheduler and etcd): one replica on each
eligible node, one more when a node joins, one fewer when a node's labels or availability no
longer admit it or it is removed; the same spec again changes nothing, another replaces every
replica; a replica cannot be removed alone, the job's name removes them all; the registry
access the job brings rides with every replica's assignment, a late node's too."""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
import pytest

from bench._simagent import SimAgent, sim_node
from protocol.errors import Conflict, InvalidArgument
from protocol.messages import (
    CreateContainer,
    LabelNode,
    NodeInspected,
    Ok,
    RegistryOptions,
    RemoveContainer,
    RemoveNode,
    StartContainer,
    SubmitJob,
    Submitted,
    UpdateNode,
)
from protocol.specs import ContainerSpec, RestartPolicy
from scheduler.global_jobs import JOB_LABEL
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import CHANNELS, agents, ask, scheduler
from tests.helpers.store_fixtures import Runner

SPEC = ContainerSpec(image="busybox", name="agent", constraints=["node.labels.tier!=db"],
                     restart=RestartPolicy(name="always"))


def test_replicas_follow_the_nodes(run: Runner[None], etcd: EmbeddedEtcd,
                                   layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s, \
                agents([s.address], ["a", "b"], labels={"b": {"tier": "db"}}) as pool:
            await s.leading.wait()
            leader = s.api.leader
            assert leader is not None

            def copies() -> Counter[str]:
                return Counter(cid for a in pool.values() for cid in a.running())

            async def replicas(*ids: str) -> None:
                await pool["a"].until(lambda _: copies() == Counter(ids))
                await leader.until(lambda ld: sorted(
                    cid for cid, e in ld.containers.items()
                    if e.record.desired != "removed") == sorted(ids))

            submitted = await ask(s.address, lambda r: SubmitJob(spec=SPEC, mode="global",
                                                                  reply=r))
            assert submitted == Submitted(ids=["agent.a"])
            await replicas("agent.a")
            assert leader.containers["agent.a"].record.spec.labels == {JOB_LABEL: "agent"}

            # A node that joins later takes one.
            late = SimAgent(sim_node("c"), [s.address], options=CHANNELS)
            pool["c"] = late
            task = asyncio.create_task(late.run())
            try:
                await late.joined.wait()
                await replicas("agent.a", "agent.c")
                # The same spec again changes nothing.
                generation = leader.containers["agent.c"].record.generation
                again = await ask(s.address, lambda r: SubmitJob(spec=SPEC, mode="global",
                                                                  reply=r))
                assert again == Submitted(ids=["agent.a", "agent.c"])
                assert leader.containers["agent.c"].record.generation == generation
                # A replica alone cannot go: the job would make it again.
                with pytest.raises(Conflict, match="a replica of global job agent"):
                    await ask(s.address, lambda r: RemoveContainer(id="agent.c", force=True,
                                                                   reply=r))
                # Its labels no longer admit node c, nor drain node a: their replicas go.
                labelled = await ask(s.address, lambda r: LabelNode(
                    node_id="c", add={"tier": "db"}, reply=r))
                assert isinstance(labelled, NodeInspected)
                await replicas("agent.a")
                await ask(s.address, lambda r: UpdateNode(node_id="a", availability="drain",
                                                          reply=r))
                await replicas()
                await ask(s.address, lambda r: UpdateNode(node_id="a", availability="active",
                                                          reply=r))
                await ask(s.address, lambda r: LabelNode(node_id="c", remove=["tier"],
                                                         reply=r))
                await replicas("agent.a", "agent.c")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                del pool["c"]  # cut off: what it held is no longer counted
            # Node c is gone for good: removed, its replica with it.
            assert await ask(s.address, lambda r: RemoveNode(node_id="c", force=True,
                                                             reply=r)) == Ok()
            await leader.until(lambda ld: "agent.c" not in ld.containers)
            # Another spec replaces every replica.
            before = leader.containers["agent.a"].record.generation
            changed = await ask(s.address, lambda r: SubmitJob(
                spec=msgspec.structs.replace(SPEC, env=["MODE=2"]), mode="global", reply=r))
            assert changed == Submitted(ids=["agent.a"])
            record = leader.containers["agent.a"].record
            assert record.generation > before and record.spec.env == ["MODE=2"]
            # The job's name removes the job and every replica.
            assert await ask(s.address, lambda r: RemoveContainer(id="agent", reply=r)) == Ok()
            await pool["a"].until(lambda _: not copies())
            await leader.until(lambda ld: "agent" not in ld.apps and not ld.containers)
            assert all(not a.refused for a in pool.values())

    run(body)


def test_a_global_job_takes_no_replica_count_and_no_taken_name(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s, agents([s.address], ["a"]):
            await s.leading.wait()
            with pytest.raises(InvalidArgument, match="replicas: a global job"):
                await ask(s.address, lambda r: SubmitJob(spec=SPEC, mode="global", replicas=2,
                                                         reply=r))
            # A container that took a replica's name first keeps it: node a has no replica.
            await ask(s.address, lambda r: CreateContainer(
                spec=ContainerSpec(image="busybox", name="agent.a"), reply=r))
            assert await ask(s.address, lambda r: SubmitJob(spec=SPEC, mode="global",
                                                            reply=r)) == Submitted(ids=[])
            # Its name is the job's: no container takes it.
            with pytest.raises(Conflict, match="a global job named agent exists"):
                await ask(s.address, lambda r: CreateContainer(
                    spec=ContainerSpec(image="busybox", name="agent"), reply=r))
            # Nor does a job take a container's name.
            await ask(s.address, lambda r: CreateContainer(
                spec=ContainerSpec(image="busybox", name="solo"), reply=r))
            with pytest.raises(Conflict, match="a container named solo already exists"):
                await ask(s.address, lambda r: SubmitJob(
                    spec=msgspec.structs.replace(SPEC, name="solo"), mode="global", reply=r))

    run(body)


def test_a_global_jobs_registry_access_reaches_every_replica_and_nothing_else(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    login = RegistryOptions(username="alice", password="s3cret")

    async def body() -> None:
        async with scheduler(etcd, layout) as s, agents([s.address], ["a"]) as pool:
            await s.leading.wait()
            await ask(s.address, lambda r: SubmitJob(spec=SPEC, mode="global", registry=login,
                                                      reply=r))
            await pool["a"].until(lambda a: "agent.a" in a.pull_access)
            assert pool["a"].pull_access["agent.a"] == login
            # A container that names itself like a replica and carries the job's label.
            impostor = msgspec.structs.replace(SPEC, name="agent.c", constraints=[],
                                               labels={JOB_LABEL: "agent"})
            await ask(s.address, lambda r: CreateContainer(spec=impostor, reply=r))
            await ask(s.address, lambda r: StartContainer(id="agent.c", reply=r))
            await pool["a"].until(lambda a: "agent.c" in a.pull_access)
            late = SimAgent(sim_node("b"), [s.address], options=CHANNELS)
            pool["b"] = late
            task = asyncio.create_task(late.run())
            try:
                await late.until(lambda a: "agent.b" in a.pull_access)
                assert late.pull_access["agent.b"] == login
                assert pool["a"].pull_access["agent.c"] is None
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                del pool["b"]

    run(body)
