"""What a daemon may tell others as its address: wildcards and malformed addresses refused,
an ``--advertise`` host completed with the bound port; the IP an address names."""

from __future__ import annotations

import pytest

from protocol.addresses import (
    address_ip,
    advertised,
    check_advertise,
    check_reachable,
    is_wildcard,
)
from protocol.errors import InvalidArgument


@pytest.mark.parametrize(("bound", "explicit", "told"), [
    ("tcp://127.0.0.1:7376", "", "tcp://127.0.0.1:7376"),
    ("ipc:///run/shoal/worker.sock", "", "ipc:///run/shoal/worker.sock"),
    ("tcp://0.0.0.0:41234", "tcp://10.0.0.5:7376", "tcp://10.0.0.5:7376"),
    ("tcp://0.0.0.0:41234", "tcp://10.0.0.5", "tcp://10.0.0.5:41234"),  # a port 0 resolved
    ("tcp://0.0.0.0:41234", "tcp://10.0.0.5:0", "tcp://10.0.0.5:41234"),
    ("tcp://*:41234", "node-1.example", "tcp://node-1.example:41234"),
    ("tcp://[::]:41234", "[fd00::5]", "tcp://[fd00::5]:41234"),
    ("tcp://[::]:41234", "tcp://[fd00::5]:9", "tcp://[fd00::5]:9"),
])
def test_advertised(bound: str, explicit: str, told: str) -> None:
    assert advertised(bound, explicit) == told


@pytest.mark.parametrize(("bound", "explicit", "why"), [
    ("tcp://0.0.0.0:7376", "", "--advertise"),
    ("tcp://[::]:7376", "", "--advertise"),
    ("tcp://*:7376", "", "--advertise"),
    ("tcp://0.0.0.0:7376", "tcp://0.0.0.0:7376", "wildcard"),
    ("tcp://0.0.0.0:7376", "bad host!", "bad host"),
    ("ipc:///x.sock", "10.0.0.5", "give a port"),
    ("tcp://0.0.0.0:7376", "udp://10.0.0.5:1", "expected"),
])
def test_advertised_refusals(bound: str, explicit: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        advertised(bound, explicit)


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:1", "tcp://[::]:1", "tcp://*:1",
                                     "tcp://h", "tcp://h:0", "tcp://h:1/path", "ipc://",
                                     "inproc://x", "http://h:1", ""])
def test_unreachable_addresses(address: str) -> None:
    with pytest.raises(InvalidArgument):
        check_reachable(address)


def test_wildcards_and_advertise_values() -> None:
    assert [is_wildcard(a) for a in ("tcp://0.0.0.0:0", "tcp://[::]:0", "tcp://*:0",
                                     "tcp://127.0.0.1:0", "ipc:///x")] == [
        True, True, True, False, False]
    check_advertise("10.0.0.5")
    check_advertise("tcp://10.0.0.5:0")
    with pytest.raises(InvalidArgument):
        check_advertise("tcp://0.0.0.0:7376")


@pytest.mark.parametrize(("address", "ip"), [
    ("tcp://10.0.0.5:7376", "10.0.0.5"),
    ("tcp://[fd00::1]:7376", "fd00::1"),
    ("tcp://worker-1:7376", ""),
    ("tcp://cafe:7376", ""),  # a name made of hex letters is still a name
    ("ipc:///run/shoal/worker.sock", ""),
    ("garbage", ""),
])
def test_the_ip_of_an_address(address: str, ip: str) -> None:
    assert address_ip(address) == ip
