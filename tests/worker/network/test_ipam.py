"""Address management without a kernel: the pure arithmetic (free subnets, next addresses,
``--ip``), and the worker's locked state under concurrent allocators in separate processes:
no address is ever given twice, and a released one is given again."""

from __future__ import annotations

import ipaddress
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import subnets
from protocol.errors import Conflict, InvalidArgument
from protocol.specs import ContainerSpec, NetworkSpec
from worker.network import ipam
from worker.network.allocation import allocate
from worker.network.state import NetworkRecord, NetworkState, endpoint_key

SUBNET = "10.77.0.0/26"  # 61 addresses for containers (gateway .1)


def test_free_subnet_skips_what_is_taken() -> None:
    taken = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.18.5.0/24")]
    assert str(ipam.free_subnet(taken)) == "172.19.0.0/16"
    everything = [ipaddress.IPv4Network("0.0.0.0/0")]
    with pytest.raises(Conflict, match="no free subnet"):
        ipam.free_subnet(everything)


def test_gateways_and_fixed_addresses() -> None:
    subnet = ipaddress.IPv4Network(SUBNET)
    assert subnets.gateway_of(subnet) == "10.77.0.1"
    with pytest.raises(InvalidArgument, match="not a host address"):
        subnets.gateway_of(subnet, "10.77.0.63")  # the broadcast address
    assert ipam.next_address(subnet, "10.77.0.1", [], "10.77.0.9") == "10.77.0.9"
    with pytest.raises(Conflict, match="already in use"):
        ipam.next_address(subnet, "10.77.0.1", ["10.77.0.9"], "10.77.0.9")
    with pytest.raises(InvalidArgument, match="not a host address"):
        ipam.next_address(subnet, "10.77.0.1", [], "10.78.0.9")
    with pytest.raises(InvalidArgument, match="too small"):
        subnets.parse_subnet("10.0.0.0/31")


@given(st.lists(st.integers(min_value=2, max_value=62), unique=True, max_size=61))
def test_next_address_is_never_held(held_hosts: list[int]) -> None:
    held = [f"10.77.0.{h}" for h in held_hosts]
    subnet = ipaddress.IPv4Network(SUBNET)
    if len(held) == 61:
        with pytest.raises(Conflict, match="no free address"):
            ipam.next_address(subnet, "10.77.0.1", held)
        return
    address = ipam.next_address(subnet, "10.77.0.1", held)
    assert address not in held and address != "10.77.0.1"
    assert ipaddress.IPv4Address(address) in subnet


def _allocate_many(directory: str, worker: int, count: int) -> None:
    state = NetworkState(Path(directory))
    for n in range(count):
        with state.change() as current:
            allocate(current, current.networks["net"], f"w{worker}-{n}", "",
                     ContainerSpec(image="x", network="net"))


def test_concurrent_allocators_never_share_an_address(tmp_path: Path) -> None:
    state = NetworkState(tmp_path)
    with state.change() as current:
        current.networks["net"] = NetworkRecord(
            id="n", spec=NetworkSpec(name="net"), subnet=SUBNET, gateway="10.77.0.1",
            bridge="bx")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_allocate_many, args=(str(tmp_path), w, 15))
               for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    endpoints = state.read().endpoints
    addresses = [e.ip for e in endpoints.values()]
    assert len(endpoints) == 60 and len(set(addresses)) == 60
    # Released, an address is given again; the pool holds 61, so one more fits, then none.
    with state.change() as current:
        freed = current.endpoints.pop(endpoint_key("w0-0", "net")).ip
        again = allocate(current, current.networks["net"], "late", "",
                         ContainerSpec(image="x", network="net", ip=freed))
    assert again.ip == freed
    with state.change() as current:
        allocate(current, current.networks["net"], "last", "",
                 ContainerSpec(image="x", network="net"))
    with pytest.raises(Conflict, match="no free address"), state.change() as current:
        allocate(current, current.networks["net"], "one-too-many", "",
                 ContainerSpec(image="x", network="net"))
