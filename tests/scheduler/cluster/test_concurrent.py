"""1,000 single-container submissions from concurrent clients: each placed exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import channels
from protocol.messages import ContainerCreated, CreateContainer, Ok, StartContainer
from protocol.specs import ContainerSpec
from scheduler.cluster.cycle import GENERATION_SPAN
from scheduler.store import CONTAINERS, EmbeddedEtcd, EtcdClient, Layout, Store
from tests.helpers.in_process_cluster import CHANNELS, agents, scheduler
from tests.helpers.store_fixtures import Runner

CLIENTS = 20
PER_CLIENT = 50


def test_1000_concurrent_runs_each_placed_exactly_once(run: Runner[None], etcd: EmbeddedEtcd,
                                                       layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a", "b", "c", "d"]) as pool:

                async def client(n: int) -> None:
                    async with await channels.connect(s.address, CHANNELS) as conn:
                        async def one(i: int) -> None:  # docker run = create + start
                            spec = ContainerSpec(image="busybox", name=f"r{n}-{i}")
                            created = await channels.request(
                                conn.sender, lambda r: CreateContainer(spec=spec, reply=r))
                            assert isinstance(created, ContainerCreated)
                            started = await channels.request(
                                conn.sender, lambda r: StartContainer(id=created.id, reply=r))
                            assert started == Ok()

                        await asyncio.gather(*(one(i) for i in range(PER_CLIENT)))

                await asyncio.gather(*(client(n) for n in range(CLIENTS)))
                total = CLIENTS * PER_CLIENT

                def copies() -> Counter[str]:
                    return Counter(c for a in pool.values() for c in a.running())

                await pool["a"].until(lambda _: sum(copies().values()) >= total)
                assert copies() == Counter({f"r{n}-{i}": 1 for n in range(CLIENTS)
                                            for i in range(PER_CLIENT)})
                async with EtcdClient([etcd.endpoint]) as client_:
                    records = [r async for r in Store(client_, layout).list(CONTAINERS)]
                assert len(records) == total
                # Each placed once: the first assignment of its record.
                assert {r.value.generation % GENERATION_SPAN for r in records} == {1}
                assert max(len(a.running()) for a in pool.values()) == total // len(pool)

    run(body, 90.0)
