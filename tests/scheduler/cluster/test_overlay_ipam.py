"""Overlay IPAM against a real etcd: allocators with caches of their own (two schedulers
overlapping during a handover, say) taking addresses at the same moment never get one address
twice; what each holds is exactly the keys in etcd; released addresses are taken again; a
wanted address taken is refused; VNIs are unique and default subnets follow them."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import Conflict
from protocol.specs import NetworkSpec
from scheduler.cluster.overlay_ipam import (
    OverlayAddresses,
    default_subnet,
    give_back_vni,
    take_vni,
)
from scheduler.store import ADDRESSES, EmbeddedEtcd, EtcdClient, Layout, Store
from tests.helpers.store_fixtures import Runner

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def overlay(prefixlen: int) -> NetworkSpec:
    return NetworkSpec(name=f"ov{uuid.uuid4().hex[:8]}", driver="overlay",
                       subnet=f"10.99.0.0/{prefixlen}", gateway="10.99.0.1", vni=4096)


@SETTINGS
@given(allocators=st.integers(2, 4), per_allocator=st.integers(1, 12),
       prefixlen=st.sampled_from([26, 27, 28]),
       releases=st.lists(st.integers(0, 1000), max_size=6))
def test_concurrent_allocations_never_share_an_address(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout, allocators: int,
        per_allocator: int, prefixlen: int, releases: list[int]) -> None:
    spec = overlay(prefixlen)
    room = sum(1 for _ in ipaddress.IPv4Network(spec.subnet).hosts()) - 1  # the gateway

    async def body() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            store = Store(client, layout)
            pool = [OverlayAddresses(store) for _ in range(allocators)]

            async def take(who: OverlayAddresses, n: int,
                           round_: str) -> list[tuple[str, str]]:
                got = []
                for i in range(n):
                    cid = f"c{id(who)}-{round_}{i}"
                    try:
                        got.append((cid, await who.allocate(spec, cid)))
                    except Conflict:
                        got.append((cid, ""))  # the subnet is full
                return got

            rounds = await asyncio.gather(*(take(a, per_allocator, 'a') for a in pool))
            held = {cid: ip for r in rounds for cid, ip in r if ip}
            assert len(set(held.values())) == len(held), "one address given twice"
            assert len(held) == min(room, allocators * per_allocator)
            # Some given back (by another allocator than the one that took them), then taken
            # again by all at once: still never one address twice.
            ordered = sorted(held)
            for pick in releases:
                if not ordered:
                    break
                cid = ordered.pop(pick % len(ordered))
                await pool[pick % allocators].release(spec.name, held.pop(cid), cid)
            again = await asyncio.gather(*(take(a, 2, 'b') for a in pool))
            held.update({cid: ip for r in again for cid, ip in r if ip})
            assert len(set(held.values())) == len(held), "one address given twice"
            in_etcd = {r.value.container_id: r.id.rpartition(":")[2]
                       async for r in store.list(ADDRESSES) if r.value.network == spec.name}
            assert in_etcd == held
            assert spec.gateway not in held.values()

    run(body)


def test_a_wanted_address_and_vnis(run: Runner[None], etcd: EmbeddedEtcd,
                                   layout: Layout) -> None:
    spec = overlay(28)

    async def body() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            store = Store(client, layout)
            one, two = OverlayAddresses(store), OverlayAddresses(store)
            assert await one.allocate(spec, "a", "10.99.0.9") == "10.99.0.9"
            with pytest.raises(Conflict, match="already in use"):
                await two.allocate(spec, "b", "10.99.0.9")
            assert await two.allocate(spec, "b") == "10.99.0.2"
            await two.release(spec.name, "10.99.0.9", "b")  # not b's: kept
            with pytest.raises(Conflict):
                await one.allocate(spec, "c", "10.99.0.9")
            await one.release(spec.name, "10.99.0.9", "a")
            assert await two.allocate(spec, "c", "10.99.0.9") == "10.99.0.9"

            vnis = await asyncio.gather(*(take_vni(store, f"n{i}") for i in range(6)))
            assert sorted(vnis) == list(range(4096, 4102))
            await give_back_vni(store, vnis[1], "n0")  # not n0's: kept
            assert await take_vni(store, "n8") == 4102
            await give_back_vni(store, vnis[1], "n1")
            assert await take_vni(store, "n9") == vnis[1]

    run(body)


def test_default_subnets_follow_the_vni_and_avoid_given_ones() -> None:
    assert str(default_subnet(4096, [])) == "10.0.0.0/24"
    assert str(default_subnet(4096 + 257, [])) == "10.1.1.0/24"
    taken = [ipaddress.IPv4Network("10.0.0.0/23")]
    assert str(default_subnet(4096, taken)) == "10.0.2.0/24"
