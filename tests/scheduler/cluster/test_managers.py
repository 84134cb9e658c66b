"""Workers learn the live schedulers from the leader, and follow a failover to one they were
never told to join."""

from __future__ import annotations

import contextlib

from bench._simagent import SimAgent
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import agents, scheduler
from tests.helpers.store_fixtures import Runner


def test_a_worker_that_joined_only_the_leader_follows_the_failover(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with contextlib.AsyncExitStack() as first, scheduler(etcd, layout, "s2") as s2:
            await s2.leading.wait()
            async with agents([s2.address], ["a"]) as pool:
                agent: SimAgent = pool["a"]
                assert agent.managers == [s2.address]
                # A standby starts after the join: the leader tells the worker.
                s1 = await first.enter_async_context(scheduler(etcd, layout, "s1"))
                await agent.until(lambda a: sorted(a.managers) == sorted([s1.address,
                                                                         s2.address]))
                assert agent.scheduler == s2.address
                await first.aclose()  # s1 goes: the worker is told that too
                await agent.until(lambda a: a.managers == [s2.address])

    run(body)


def test_the_worker_reaches_a_standby_it_only_learned_of(run: Runner[None],
                                                         etcd: EmbeddedEtcd,
                                                         layout: Layout) -> None:
    async def body() -> None:
        async with contextlib.AsyncExitStack() as first:
            s1 = await first.enter_async_context(scheduler(etcd, layout, "s1"))
            await s1.leading.wait()
            async with scheduler(etcd, layout, "s2") as s2, \
                    agents([s1.address], ["a"]) as pool:
                agent = pool["a"]
                await agent.until(lambda a: s2.address in a.managers)
                await first.aclose()  # the leader resigns: s2 takes over
                await s2.leading.wait()
                await agent.until(lambda a: a.scheduler == s2.address and a.joins >= 2)
                assert agent.schedulers == [s1.address]  # s2 it only learned of

    run(body)
