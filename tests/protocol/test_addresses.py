"""What an address says of its host."""

from __future__ import annotations

import pytest

from protocol.addresses import address_ip


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
