"""The overlay endpoints the leader tells workers about. Pure.

A container is an endpoint of its overlay network while its record holds an address
(``ContainerRecord.address``: placed, live, not removed). ``OverlayDirectory`` keeps them by
network, follows committed records, and says which nodes must hear the list again: each node
gets every endpoint of the overlay networks it has containers on (``NetworkEndpoints``), the
whole list, at join and whenever it changes. An endpoint names its container for resolvers only
while the container is seen running. Containers on their node's own network (``host``) are
endpoints too, at their node's address, told to every node that has an overlay container (their
names answer on any network there).
"""

from __future__ import annotations

from collections import Counter

import msgspec

from protocol.addresses import address_ip
from protocol.messages import Assign
from protocol.specs import DEFAULT_NETWORK_MODE, OverlayEndpoint
from protocol.subnets import mac_of
from scheduler.store import ContainerRecord, NodeRecord

HOST_NETWORK = "host"  # the endpoints of containers on their nodes' own network


def vtep_of(address: str) -> str:
    """The IPv4 address of a node's channel address (``tcp://10.0.0.5:7376`` → 10.0.0.5), or
    "" when it has none (an ``ipc://`` address, an IPv6 one)."""
    ip = address_ip(address)
    return ip if "." in ip else ""


def assignment(container_id: str, record: ContainerRecord) -> Assign:
    """The Assign for a record: its overlay address rides as the spec's ``ip``."""
    spec = record.spec
    if record.address:
        spec = msgspec.structs.replace(spec, ip=record.address)
    return Assign(container_id=container_id, generation=record.generation, spec=spec)


def on_host_network(record: ContainerRecord, node: NodeRecord | None) -> bool:
    """Whether the container runs on its node's own network: ``--network host``, or the
    default on a process-driver node (which has no other)."""
    network = record.spec.network
    return network == "host" or (network == DEFAULT_NETWORK_MODE and node is not None
                                 and node.info.runtime == "process")


def endpoint_of(container_id: str, record: ContainerRecord | None,
                node: NodeRecord | None) -> OverlayEndpoint | None:
    """The record's endpoint, or None when it holds no overlay address (nor runs on the
    host network of a node with an IPv4 address)."""
    if record is None or not record.node_id:
        return None
    job = record.spec.name if record.spec.name and record.spec.name != container_id else ""
    running = record.desired == "running" and record.observed is not None and \
        record.observed.status == "running"
    if on_host_network(record, node) and node is not None and vtep_of(node.info.address):
        return OverlayEndpoint(network=HOST_NETWORK, container_id=container_id,
                               name=container_id, job=job,
                               aliases=list(record.spec.network_aliases),
                               ip=vtep_of(node.info.address), mac="", vtep="",
                               running=running)
    network = record.spec.network_spec
    if not record.address or network is None or network.driver != "overlay":
        return None
    return OverlayEndpoint(network=network.name, container_id=container_id,
                           name=container_id, job=job,
                           aliases=list(record.spec.network_aliases), ip=record.address,
                           mac=mac_of(record.address),
                           vtep=vtep_of(node.info.address) if node is not None else "",
                           running=running)


class OverlayDirectory:
    """Endpoints by network and by node; what changed since the last ``take_changed``."""

    def __init__(self) -> None:
        self.by_network: dict[str, dict[str, OverlayEndpoint]] = {}
        self.node_of: dict[str, str] = {}  # container id → node id
        self.node_networks: dict[str, Counter[str]] = {}  # node id → network → endpoints
        self._changed_networks: set[str] = set()
        self._changed_nodes: set[str] = set()

    def put(self, container_id: str, endpoint: OverlayEndpoint | None, node_id: str) -> None:
        """The container's endpoint is now ``endpoint`` (None: it has none) on ``node_id``."""
        if endpoint is not None and self.node_of.get(container_id) == node_id and \
                self.by_network.get(endpoint.network, {}).get(container_id) == endpoint:
            return
        self._drop(container_id)
        if endpoint is None:
            return
        self.by_network.setdefault(endpoint.network, {})[container_id] = endpoint
        self.node_of[container_id] = node_id
        self.node_networks.setdefault(node_id, Counter())[endpoint.network] += 1
        self._changed_networks.add(endpoint.network)
        self._changed_nodes.add(node_id)

    def _drop(self, container_id: str) -> None:
        node_id = self.node_of.pop(container_id, None)
        if node_id is None:
            return
        for network, members in self.by_network.items():
            endpoint = members.pop(container_id, None)
            if endpoint is None:
                continue
            if not members:
                del self.by_network[network]
            counts = self.node_networks[node_id]
            counts[network] -= 1
            if counts[network] <= 0:
                del counts[network]
            self._changed_networks.add(network)
            self._changed_nodes.add(node_id)
            return

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
