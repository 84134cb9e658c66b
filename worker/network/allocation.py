"""A container's endpoint on a network, chosen in the worker's network state (held under its
lock): an address no other endpoint holds (``--ip`` if free) and host ports for ``-p`` and
``-P`` that no endpoint and no socket on this host holds."""

from __future__ import annotations

import ipaddress
import socket

from protocol.errors import Conflict, Unsupported
from protocol.specs import JOB_LABEL, ContainerSpec, PortMapping
from protocol.validation import parse_exposed
from worker.network import ipam
from worker.network.state import EndpointRecord, NetworkFile, NetworkRecord, endpoint_key


def _free_port(protocol: str, host_ip: str, port: int) -> int:
    """``port`` if nothing on this host is bound to it, or with 0 a port the kernel chose;
    Conflict if it is taken."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            raise Conflict(f"host port {port}/{protocol} is already in use: {exc.strerror}",
                           details={"port": str(port)}) from None
        return int(probe.getsockname()[1])


def _publish(state: NetworkFile, container_id: str, wanted: list[PortMapping]
             ) -> list[PortMapping]:
    """Host ports for ``wanted``: the one asked for if no endpoint and no socket on this host
    holds it, or a free one the kernel chose."""
    held = {(p.protocol, p.host_port) for e in state.endpoints.values()
            if e.container_id != container_id for p in e.ports}
    chosen: list[PortMapping] = []
    for port in wanted:
        if port.protocol not in ("tcp", "udp"):
            raise Unsupported(f"publishing {port.protocol} ports is not supported (tcp, "
                              "udp)")
        if port.host_port and (port.protocol, port.host_port) in held:
            raise Conflict(f"host port {port.host_port}/{port.protocol} is already "
                           "published by another container",
                           details={"port": str(port.host_port)})
        host_port = _free_port(port.protocol, port.host_ip, port.host_port)
        held.add((port.protocol, host_port))
        chosen.append(PortMapping(container_port=port.container_port, host_port=host_port,
                                  protocol=port.protocol, host_ip=port.host_ip))
    return chosen


def ports_to_publish(spec: ContainerSpec, image_exposed: list[str]) -> list[PortMapping]:
    """``-p`` as given, and with ``-P`` every exposed port (the image's and ``--expose``)
    not already published, on a free host port."""
    wanted = list(spec.ports)
    if spec.publish_all:
        given: set[tuple[int, str]] = {(p.container_port, p.protocol) for p in wanted}
        for text in [*image_exposed, *spec.expose]:
            port, protocol = parse_exposed(text)
            if (port, protocol) not in given:
                given.add((port, protocol))
                wanted.append(PortMapping(container_port=port,
                                          protocol=protocol))  # type: ignore[arg-type]
    return wanted


def allocate(state: NetworkFile, network: NetworkRecord, container_id: str, name: str,
             spec: ContainerSpec, *, ports: list[PortMapping] | None = None,
             ip: str | None = None, aliases: list[str] | None = None, ifname: str = "eth0",
             veth: str = "") -> EndpointRecord:
    """The container's endpoint on ``network``, put in ``state`` (held under its lock): an
    address no other endpoint holds (``--ip`` if free) and its published ports."""
    held = [e.ip for e in state.endpoints.values() if e.network == network.spec.name
            and e.container_id != container_id]
    address = ipam.next_address(ipaddress.IPv4Network(network.subnet), network.gateway, held,
                                spec.ip if ip is None else ip)
    endpoint = EndpointRecord(
        container_id=container_id, name=name, network=network.spec.name, ip=address,
        ports=_publish(state, container_id, spec.ports if ports is None else ports),
        aliases=list(spec.network_aliases if aliases is None else aliases),
        job=spec.labels.get(JOB_LABEL, ""), dns=list(spec.dns), ifname=ifname, veth=veth)
    state.endpoints[endpoint_key(container_id, network.spec.name)] = endpoint
    return endpoint

