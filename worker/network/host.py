"""The networks of one worker on its host, as objects: each a bridge (and, for an overlay, a
VXLAN device) with its record in the worker's network state, and the worker's nftables table;
``network create|ls|inspect|rm|prune`` on them; the names of the worker's devices.

Names on the host are the worker's own: ``b<scope><net>`` for bridges, ``x<scope><net>`` for
VXLAN devices, ``v<scope><id>`` for veths, table ``shoal_<scope>``, where scope is the
worker's (its state dir's) short hash, so workers sharing a host never touch each other's.
A bridge network's subnet is chosen host-wide (under a lock every worker on the host takes),
overlapping nothing on the host; an overlay's is the cluster's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path

from protocol import subnets
from protocol.errors import Conflict, InvalidArgument, NotFound, Unsupported
from protocol.specs import Endpoint, NetworkInfo, NetworkSpec
from protocol.validation import PREDEFINED_NETWORKS
from worker.network import ipam, links, nat, vxlan
from worker.network.state import EndpointRecord, NetworkFile, NetworkRecord, NetworkState

DEFAULT_NETWORK = "bridge"
HOST_LOCK = Path("/run/shoal-networks.lock")  # subnets are chosen host-wide, one at a time


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def drop_unused_cluster_networks(state: NetworkFile) -> list[NetworkRecord]:
    """Networks made for a scheduler's containers that no endpoint uses any more, taken out
    of ``state`` (their bridges are the caller's to delete)."""
    used = {e.network for e in state.endpoints.values()}
    gone = [n for n in state.networks.values() if n.from_cluster and n.spec.name not in used]
    for network in gone:
        del state.networks[network.spec.name]
    return gone


def delete_network_links(network: NetworkRecord) -> None:
    """A network's devices off the host: its VXLAN device (with every forwarding and
    neighbour entry on it) and its bridge."""
    if network.vxlan:
        links.delete_link(network.vxlan)
    links.delete_link(network.bridge)



class HostNetworks:
    def __init__(self, state_dir: Path, scope: str) -> None:
        self.state = NetworkState(state_dir / "networks")
        self.scope = scope[:6]
        self.table = nat.table_name(scope[:12])
        # This worker's advertised IPv4 address, the VXLAN devices' local one: set when it
        # joins a cluster ("" on a standalone worker, which has no overlay networks).
        self.vtep = ""
        # The nftables script last applied: a container without published ports changes
        # nothing in it, and its start then spares the ``nft`` run (None: apply whatever).
        self._applied_rules: str | None = None

    # --- names -----------------------------------------------------------------------------
    def bridge_name(self, network_id: str) -> str:
        return f"b{self.scope}{network_id[:8]}"

    def veth_name(self, container_id: str) -> str:
        return f"v{self.scope}{container_id[:8]}"

    def _veth_of(self, endpoint: EndpointRecord) -> str:
        return endpoint.veth or self.veth_name(endpoint.container_id)

    def _connected_veth(self, container_id: str, network: str) -> str:
        """A connected network's host end: the pair hashed (the first one's is the id)."""
        digest = hashlib.sha256(f"{container_id}/{network}".encode()).hexdigest()
        return f"v{self.scope}{digest[:8]}"

    def vxlan_name(self, network_id: str) -> str:
        return f"x{self.scope}{network_id[:8]}"

    def _apply_rules(self, state: NetworkFile) -> None:
        """This worker's table made what ``state`` needs (held under its lock)."""
        script = nat.render(self.table, state.networks.values(), state.endpoints.values())
        if script != self._applied_rules:
            self._applied_rules = None
            nat.apply(script)
            self._applied_rules = script


    async def tear_down(self) -> None:
        """Everything of this worker's networks off the host: bridges, veths, its table."""
        def run() -> None:
            for name in (links.links_named(f"v{self.scope}") +
                         links.links_named(f"x{self.scope}") +
                         links.links_named(f"b{self.scope}")):
                links.delete_link(name)
            self._applied_rules = None
            with contextlib.suppress(OSError, Unsupported):
                nat.delete_table(self.table)
        await asyncio.to_thread(run)


    # --- networks ----------------------------------------------------------------------------
    def _add(self, state: NetworkFile, spec: NetworkSpec) -> NetworkRecord:
        network_id = os.urandom(32).hex()
        if spec.driver == "overlay":
            return self._add_overlay(state, spec, network_id)
        with _host_lock():
            taken = links.host_subnets()
            taken += [ipaddress.IPv4Network(n.subnet) for n in state.networks.values()]
            if spec.subnet:
                subnet = subnets.parse_subnet(spec.subnet)
                clash = [str(t) for t in taken if t.overlaps(subnet)]
                if clash:
                    raise Conflict(f"subnet {subnet} overlaps {', '.join(clash[:3])} on this "
                                   "host", details={"subnet": str(subnet)})
            else:
                subnet = ipam.free_subnet(taken)
            record = NetworkRecord(id=network_id, spec=spec, created_at=time.time(),
                                   subnet=str(subnet), gateway=subnets.gateway_of(subnet,
                                                                               spec.gateway),
                                   bridge=self.bridge_name(network_id))
            links.ensure_bridge(record.bridge, record.gateway, subnet.prefixlen)
        state.networks[spec.name] = record
        return record

    def _add_overlay(self, state: NetworkFile, spec: NetworkSpec,
                     network_id: str) -> NetworkRecord:
        """An overlay's bridge and VXLAN device on this host, as the cluster chose them."""
        if not self.vtep:
            raise Unsupported(f"overlay network {spec.name}: this worker has no IPv4 address "
                              "advertised to a cluster for its VXLAN traffic (--advertise)")
        if not spec.subnet or not spec.vni:
            raise InvalidArgument(f"overlay network {spec.name} came without its subnet and "
                                  "VNI: only a scheduler makes overlay networks")
        subnet = ipaddress.IPv4Network(spec.subnet)
        record = NetworkRecord(id=network_id, spec=spec, created_at=time.time(),
                               subnet=str(subnet), gateway=spec.gateway or str(
                                   next(subnet.hosts())),
                               bridge=self.bridge_name(network_id),
                               vxlan=self.vxlan_name(network_id))
        links.ensure_bridge(record.bridge, record.gateway, subnet.prefixlen)
        vxlan.ensure_vxlan(record.vxlan, spec.vni, self.vtep, record.bridge)
        state.networks[spec.name] = record
        return record

    async def create(self, spec: NetworkSpec) -> NetworkInfo:
        if spec.driver == "overlay":
            raise Unsupported("an overlay network spans a cluster's hosts: create it on a "
                              "scheduler (shoal -H <scheduler> network create --driver "
                              "overlay); a standalone worker has bridge networks only")
        if spec.name in PREDEFINED_NETWORKS:
            raise Conflict(f"{spec.name} is a predefined network: choose another name")
        if spec.gateway and not spec.subnet:
            raise InvalidArgument("--gateway needs --subnet")

        def run() -> NetworkInfo:
            with self.state.change() as state:
                if spec.name in state.networks:
                    raise Conflict(f"network {spec.name} already exists",
                                   details={"network": spec.name})
                record = self._add(state, spec)
                self._apply_rules(state)
            return self._info(record, state)
        return await asyncio.to_thread(run)

    def _find(self, state: NetworkFile, ref: str) -> NetworkRecord:
        if ref in state.networks:
            return state.networks[ref]
        matches = [n for n in state.networks.values() if n.id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"no such network: {ref}", details={"network": ref})

    @staticmethod
    def _info(record: NetworkRecord, state: NetworkFile) -> NetworkInfo:
        return NetworkInfo(
            id=record.id, spec=record.spec, created_at=record.created_at,
            subnet=record.subnet, gateway=record.gateway,
            endpoints=[Endpoint(container_id=e.container_id, name=e.name, ip=e.ip,
                                ports=e.ports)
                       for e in state.endpoints.values() if e.network == record.spec.name])

    def listing(self) -> list[NetworkInfo]:
        state = self.state.read()
        return [self._info(n, state) for n in sorted(state.networks.values(),
                                                      key=lambda n: n.spec.name)]

    def inspect(self, ref: str) -> NetworkInfo:
        state = self.state.read()
        return self._info(self._find(state, ref), state)

    async def remove(self, ref: str) -> None:
        def run() -> None:
            with self.state.change() as state:
                record = self._find(state, ref)
                if record.spec.name == DEFAULT_NETWORK:
                    raise Conflict(f"{DEFAULT_NETWORK} is the node's default network: it "
                                   "cannot be removed")
                users = [e.name or e.container_id[:12] for e in state.endpoints.values()
                         if e.network == record.spec.name]
                if users:
                    raise Conflict(f"network {record.spec.name} is in use by "
                                   f"{', '.join(sorted(users))}",
                                   details={"containers": ",".join(sorted(users))[:200]})
                del state.networks[record.spec.name]
                self._apply_rules(state)
                delete_network_links(record)
        await asyncio.to_thread(run)

    async def prune(self) -> list[str]:
        """Every network no endpoint uses removed (the default one kept); their names."""
        def run() -> list[str]:
            with self.state.change() as state:
                used = {e.network for e in state.endpoints.values()}
                gone = [n for n in state.networks.values()
                        if n.spec.name != DEFAULT_NETWORK and n.spec.name not in used]
                for network in gone:
                    del state.networks[network.spec.name]
                self._apply_rules(state)
            for network in gone:
                delete_network_links(network)
            return sorted(n.spec.name for n in gone)
        return await asyncio.to_thread(run)

