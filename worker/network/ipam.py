"""Address arithmetic for bridge networks (pure): a subnet that overlaps nothing in use, the
next address of a subnet nobody holds. The callers hold the locks that make these answers
stay true (``state.NetworkState`` for a worker's endpoints, a host-wide lock for subnets)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from protocol.errors import Conflict, InvalidArgument

IPv4Network = ipaddress.IPv4Network


def default_pool() -> Iterator[IPv4Network]:
    """Docker's default address pools, in its order: 172.17-31.0.0/16, then 192.168.x.0/20."""
    for second in range(17, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield ipaddress.IPv4Network(f"192.168.{third}.0/20")


def free_subnet(taken: Iterable[IPv4Network],
                pool: Iterable[IPv4Network] | None = None) -> IPv4Network:
    """The first subnet of ``pool`` that overlaps none of ``taken``."""
    used = list(taken)
    for candidate in pool if pool is not None else default_pool():
        if not any(candidate.overlaps(other) for other in used):
            return candidate
    raise Conflict("no free subnet left in the default pools (172.17-31.0.0/16, "
                   "192.168.0.0/16): give one with --subnet")


def next_address(subnet: IPv4Network, gateway: str, held: Iterable[str],
                 wanted: str = "") -> str:
    """``wanted`` if it is free and in the subnet, or else the lowest address nobody holds
    (neither the gateway nor the network and broadcast addresses)."""
    taken = {ipaddress.IPv4Address(a) for a in held} | {ipaddress.IPv4Address(gateway)}
    if wanted:
        address = ipaddress.IPv4Address(wanted)
        if address not in subnet or address in (subnet.network_address,
                                                 subnet.broadcast_address):
            raise InvalidArgument(f"--ip {wanted} is not a host address of {subnet}")
        if address in taken:
            raise Conflict(f"address {wanted} is already in use on {subnet}",
                           details={"ip": wanted})
        return wanted
    for address in subnet.hosts():
        if address not in taken:
            return str(address)
    raise Conflict(f"no free address left on {subnet}", details={"subnet": str(subnet)})
