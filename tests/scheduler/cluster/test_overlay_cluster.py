"""Overlay networks on a scheduler (simulated agents, real etcd): create takes a VNI and a
subnet, a job's replicas get distinct addresses taken in etcd and carried in their Assign,
every node with the network is told its endpoints, a lost node's containers move with new
addresses (the old ones given back, the nodes told), and removal gives everything back."""

from __future__ import annotations

import asyncio
import ipaddress

import msgspec
import pytest

from bench._simagent import SimAgent, sim_node
from protocol.errors import Conflict, InvalidArgument
from protocol.messages import (
    CreateContainer,
    CreateNetwork,
    NetworkCreated,
    Ok,
    RemoveContainer,
    RemoveNetwork,
    SubmitJob,
    Submitted,
)
from protocol.specs import ContainerSpec, NetworkSpec, RestartPolicy
from protocol.subnets import mac_of
from scheduler.cluster.leader import Leader
from scheduler.store import ADDRESSES, NETWORKS, VNIS, EmbeddedEtcd, EtcdClient, Layout, Store
from tests.helpers.in_process_cluster import CHANNELS, ask, scheduler
from tests.helpers.store_fixtures import Runner

VTEPS = {"a": "192.0.2.10", "b": "192.0.2.11"}


def agent(name: str, address: str) -> SimAgent:
    node = msgspec.structs.replace(sim_node(name), address=f"tcp://{VTEPS[name]}:7376")
    return SimAgent(node, [address], options=CHANNELS)


def addresses(leader: Leader) -> dict[str, tuple[str, str]]:
    """Container id → (node, address) of every live record."""
    return {cid: (e.record.node_id, e.record.addresses.get("ov", ""))
            for cid, e in leader.containers.items() if e.record.schedule_state == "running"}


def test_overlay_addresses_follow_placement_loss_and_removal(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s, EtcdClient([etcd.endpoint]) as client:
            store = Store(client, layout)
            await s.leading.wait()
            leader = s.api.leader
            assert leader is not None
            a, b = agent("a", s.address), agent("b", s.address)
            tasks = {n: asyncio.create_task(x.run()) for n, x in (("a", a), ("b", b))}
            try:
                await a.joined.wait()
                await b.joined.wait()
                with pytest.raises(InvalidArgument, match="VNI"):
                    await ask(s.address, lambda r: CreateNetwork(spec=NetworkSpec(
                        name="ov", driver="overlay", vni=5000), reply=r))
                made = await ask(s.address, lambda r: CreateNetwork(spec=NetworkSpec(
                    name="ov", driver="overlay"), reply=r))
                assert isinstance(made, NetworkCreated)
                got = await store.get(NETWORKS, "ov")
                assert got is not None
                net = got.value.spec
                assert net.vni == 4096 and net.subnet == "10.0.0.0/24"
                assert net.gateway == "10.0.0.1"
                with pytest.raises(Conflict, match="overlaps"):
                    await ask(s.address, lambda r: CreateNetwork(spec=NetworkSpec(
                        name="ov2", driver="overlay", subnet="10.0.0.128/25"), reply=r))
                with pytest.raises(Conflict, match="not attachable"):
                    await ask(s.address, lambda r: CreateContainer(spec=ContainerSpec(
                        image="busybox", name="solo", network="ov"), reply=r))

                spec = ContainerSpec(image="busybox", name="web", network="ov",
                                     restart=RestartPolicy(name="always"))
                submitted = await ask(s.address, lambda r: SubmitJob(spec=spec, replicas=6,
                                                                     reply=r))
                assert isinstance(submitted, Submitted)
                await leader.until(lambda ld: len(addresses(ld)) == 6)
                placed = addresses(leader)
                ips = [ip for _, ip in placed.values()]
                assert len(set(ips)) == 6 and "10.0.0.1" not in ips
                assert all(ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(net.subnet)
                           for ip in ips)
                # The Assign carried the address: the agents ran the spec with it.
                claims = {r.value.container_id: r.id.rpartition(":")[2]
                          async for r in store.list(ADDRESSES)}
                assert claims == {cid: ip for cid, (_, ip) in placed.items()}
                for x in (a, b):

                    await x.until(lambda y: len(y.overlay_endpoints) == 6)
                    told = {e.container_id: e for e in x.overlay_endpoints}
                    for cid, (node, ip) in placed.items():
                        e = told[cid]
                        assert (e.ip, e.mac, e.vtep, e.job, e.network) == (
                            ip, mac_of(ip), VTEPS[node], "web", "ov")

                # Node a is lost: its containers move to b with new addresses; the old ones
                # are given back and b is told.
                on_a = {cid for cid, (node, _) in placed.items() if node == "a"}
                assert on_a
                tasks["a"].cancel()
                await asyncio.gather(tasks["a"], return_exceptions=True)
                await leader.until(lambda ld: len(addresses(ld)) == 6 and all(
                    node == "b" for node, _ in addresses(ld).values()))
                moved = addresses(leader)
                assert len({ip for _, ip in moved.values()}) == 6
                claims = {r.value.container_id: r.id.rpartition(":")[2]
                          async for r in store.list(ADDRESSES)}
                assert claims == {cid: ip for cid, (_, ip) in moved.items()}
                await b.until(lambda y: {(e.container_id, e.ip, e.vtep)
                                         for e in y.overlay_endpoints}
                              == {(cid, ip, VTEPS["b"]) for cid, (_, ip) in moved.items()})

                with pytest.raises(Conflict, match="in use"):
                    await ask(s.address, lambda r: RemoveNetwork(name="ov", reply=r))
                for cid in submitted.ids:
                    await ask(s.address, lambda r, c=cid: RemoveContainer(  # type: ignore[misc]
                        id=c, force=True, reply=r))
                await leader.until(lambda ld: not addresses(ld))
                await b.until(lambda y: not y.overlay_endpoints)
                assert [r async for r in store.list(ADDRESSES)] == []
                assert isinstance(await ask(s.address, lambda r: RemoveNetwork(
                    name="ov", reply=r)), Ok)
                assert [r async for r in store.list(VNIS)] == []
            finally:
                for task in tasks.values():
                    task.cancel()
                await asyncio.gather(*tasks.values(), return_exceptions=True)

    run(body, 60.0)
