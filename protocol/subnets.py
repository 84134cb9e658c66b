"""Address arithmetic both sides of a network need (pure): a subnet given as text checked, its
gateway (given, or the first host), a container's MAC from its address — for a worker's bridge
and a cluster's overlay alike."""

from __future__ import annotations

import hashlib
import ipaddress

from protocol.errors import InvalidArgument

IPv4Network = ipaddress.IPv4Network


def parse_subnet(text: str) -> IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not an IPv4 subnet (CIDR, as 10.1.0.0/24)") from None
    if subnet.prefixlen > 30:
        raise InvalidArgument(f"subnet {subnet} is too small: /30 at most, for a gateway and a "
                              "container")
    return subnet


def gateway_of(subnet: IPv4Network, given: str = "") -> str:
    """The given gateway (checked to be a host of the subnet) or the subnet's first host."""
    if not given:
        return str(next(subnet.hosts()))
    try:
        address = ipaddress.IPv4Address(given)
    except ValueError:
        raise InvalidArgument(f"gateway {given!r} is not an IPv4 address") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"gateway {given} is not a host address of {subnet}")
    return given


def endpoint_id(container_id: str, network: str) -> str:
    """A container's endpoint id on a network (Docker's ``EndpointID``): the same wherever it
    is shown (a worker's inspect, a scheduler's, a network's ``Containers``)."""
    return hashlib.sha256(f"{container_id}/{network}".encode()).hexdigest()


def mac_of(ip: str) -> str:
    """Docker's MAC for a container's address: 02:42 and the address's four bytes. An overlay
    container's eth0 has it, and every host's neighbour entries name it."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)
