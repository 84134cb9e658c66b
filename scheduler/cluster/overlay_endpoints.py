"""The overlay endpoints the leader tells workers about. Pure.

A container is an endpoint of each overlay network it holds an address on
(``ContainerRecord.addresses``: placed, live, not removed; its own network and those connected
later). ``OverlayDirectory`` keeps them by
network, follows committed records, and says which nodes must hear the list again: each node
gets every endpoint of the overlay networks it has containers on (``NetworkEndpoints``), the
whole list, at join and whenever it changes. An endpoint names its container for resolvers only
while the container is seen running. Containers on their node's own network (``host``) are
endpoints too, at their node's address, told to every node that has an overlay container (their
names answer on any network there).
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import msgspec

from protocol.addresses import address_ip
from protocol.messages import Assign
from protocol.specs import DEFAULT_NETWORK_MODE, ContainerSpec, NetworkSpec, OverlayEndpoint
from protocol.subnets import mac_of
from scheduler.store import ContainerRecord, NodeRecord

HOST_NETWORK = "host"  # the endpoints of containers on their nodes' own network


def vtep_of(address: str) -> str:
    """The IPv4 address of a node's channel address (``tcp://10.0.0.5:7376`` → 10.0.0.5), or
    "" when it has none (an ``ipc://`` address, an IPv6 one)."""
    ip = address_ip(address)
    return ip if "." in ip else ""


class OverlayNetwork(NamedTuple):
    """One overlay network a container is on: the network, the address asked (``--ip``)
    and the container's aliases there."""

    spec: NetworkSpec
    wanted_ip: str
    aliases: list[str]


def overlays_of(spec: ContainerSpec) -> list[OverlayNetwork]:
    """The overlay networks the container is on: its own first, then those connected."""
    found = []
    own = spec.network_spec
    if own is not None and own.driver == "overlay" and own.subnet:
        found.append(OverlayNetwork(own, spec.ip, list(spec.network_aliases)))
    for attachment in spec.connected:
        network = attachment.spec
        if network is not None and network.driver == "overlay" and network.subnet:
            found.append(OverlayNetwork(network, attachment.ip, list(attachment.aliases)))
    return found


def assignment(container_id: str, record: ContainerRecord) -> Assign:
    """The Assign for a record: its overlay addresses ride as the spec's ``ip`` (its own
    network) and its connected networks' ``ip``."""
    spec = record.spec
    addresses = record.addresses
    if addresses:
        own = addresses.get(spec.network, spec.ip)
        connected = [msgspec.structs.replace(a, ip=addresses.get(a.name, a.ip))
                     for a in spec.connected]
        spec = msgspec.structs.replace(spec, ip=own, connected=connected)
    return Assign(container_id=container_id, generation=record.generation, spec=spec)


def on_host_network(record: ContainerRecord, node: NodeRecord | None) -> bool:
    """Whether the container runs on its node's own network: ``--network host``, or the
    default on a process-driver node (which has no other)."""
    network = record.spec.network
    return network == "host" or (network == DEFAULT_NETWORK_MODE and node is not None
                                 and node.info.runtime == "process")


def endpoints_of(container_id: str, record: ContainerRecord | None,
                 node: NodeRecord | None) -> list[OverlayEndpoint]:
    """The record's endpoints: one per overlay network it holds an address on, or the one
    on its node's own network (when that node has an IPv4 address)."""
    if record is None or not record.node_id:
        return []
    job = record.spec.name if record.spec.name and record.spec.name != container_id else ""
    running = record.desired == "running" and record.observed is not None and \
        record.observed.status == "running"
    if on_host_network(record, node) and node is not None and vtep_of(node.info.address):
        return [OverlayEndpoint(network=HOST_NETWORK, container_id=container_id,
                                name=container_id, job=job,
                                aliases=list(record.spec.network_aliases),
                                ip=vtep_of(node.info.address), mac="", vtep="",
                                running=running)]
    vtep = vtep_of(node.info.address) if node is not None else ""
    return [OverlayEndpoint(network=overlay.spec.name, container_id=container_id,
                            name=container_id, job=job, aliases=overlay.aliases, ip=ip,
                            mac=mac_of(ip), vtep=vtep, running=running)
            for overlay in overlays_of(record.spec)
            if (ip := record.addresses.get(overlay.spec.name))]


class OverlayDirectory:
    """Endpoints by network and by node; what changed since the last ``take_changed``."""

    def __init__(self) -> None:
        self.by_network: dict[str, dict[str, OverlayEndpoint]] = {}
        self.node_of: dict[str, str] = {}  # container id → node id
        self.node_networks: dict[str, Counter[str]] = {}  # node id → network → endpoints
        self._changed_networks: set[str] = set()
        self._changed_nodes: set[str] = set()

    def put(self, container_id: str, endpoints: list[OverlayEndpoint], node_id: str) -> None:
        """The container's endpoints are now ``endpoints`` (none: it has none) on
        ``node_id``; only the networks whose endpoint changed count as changed."""
        before_node = self.node_of.get(container_id)
        before = self._held(container_id) if before_node is not None else {}
        after = {e.network: e for e in endpoints}
        moved = before_node != node_id
        for network, endpoint in before.items():
            if moved or after.get(network) != endpoint:
                self._remove(container_id, network, before_node or "")
        for network, endpoint in after.items():
            if moved or before.get(network) != endpoint:
                self.by_network.setdefault(network, {})[container_id] = endpoint
                self.node_networks.setdefault(node_id, Counter())[network] += 1
                self._changed_networks.add(network)
                self._changed_nodes.add(node_id)
        if after:
            self.node_of[container_id] = node_id
        else:
            self.node_of.pop(container_id, None)

    def _held(self, container_id: str) -> dict[str, OverlayEndpoint]:
        """The container's endpoints as the directory has them, by network."""
        return {network: members[container_id] for network, members in self.by_network.items()
                if container_id in members}

    def _remove(self, container_id: str, network: str, node_id: str) -> None:
        members = self.by_network[network]
        del members[container_id]
        if not members:
            del self.by_network[network]
        counts = self.node_networks[node_id]
        counts[network] -= 1
        if counts[network] <= 0:
            del counts[network]
        self._changed_networks.add(network)
        self._changed_nodes.add(node_id)

    def _networks_of(self, node_id: str) -> list[str]:
        """The overlay networks ``node_id`` has containers on, and with them ``host``."""
        overlays = [n for n in self.node_networks.get(node_id, ()) if n != HOST_NETWORK]
        return sorted([*overlays, HOST_NETWORK]) if overlays else []

    def snapshot(self, node_id: str) -> list[OverlayEndpoint]:
        """Every endpoint of the overlay networks ``node_id`` has containers on, and every
        container on a node's own network."""
        return [e for n in self._networks_of(node_id)
                for _, e in sorted(self.by_network.get(n, {}).items())]

    def take_changed(self) -> set[str]:
        """The nodes whose list changed since the last call (and forget the changes)."""
        nodes = set(self._changed_nodes)
        for node_id in self.node_networks:
            if self._changed_networks.intersection(self._networks_of(node_id)):
                nodes.add(node_id)
        self._changed_networks.clear()
        self._changed_nodes.clear()
        return nodes
