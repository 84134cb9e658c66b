"""``Networks``: a worker's bridge networks and its containers' endpoints on them.

The driver asks it for a container's endpoint when it prepares the container (an address from
the network's subnet, host ports for ``-p``, /etc/hosts, /etc/hostname and /etc/resolv.conf),
to attach it once the runtime has made the container's namespace (a veth pair into it, before
the container's program starts), and to release it when the container is removed. At start it
settles what a crash left: endpoints of containers that are gone are released, their veths
deleted, and the nftables table is rebuilt from the state.

An overlay network (only ever from a scheduler's container) is a bridge plus a VXLAN device
(``vxlan``) on each host that has a container on it; its subnet, gateway, VNI and each
container's address are the cluster's. The cluster's endpoint list (``set_endpoints``, the one
place it arrives) programs where remote containers are.

Names on the host are the worker's own: ``b<scope><net>`` for bridges, ``x<scope><net>`` for
VXLAN devices, ``v<scope><id>`` for veths, table ``shoal_<scope>``, where scope is the
worker's (its state dir's) short hash, so workers sharing a host never touch each other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from protocol import subnets
from protocol.errors import Conflict, InvalidArgument, NotFound, Unsupported
from protocol.specs import (
    ContainerSpec,
    Endpoint,
    NetworkInfo,
    NetworkSpec,
    OverlayEndpoint,
    PortMapping,
)
from protocol.subnets import mac_of
from worker.network import files, ipam, links, nat, vxlan
from worker.network.state import EndpointRecord, NetworkFile, NetworkRecord, NetworkState

log = structlog.get_logger("shoal.worker.network")

DEFAULT_NETWORK = "bridge"
NOT_BRIDGES = ("none", "host")
HOST_LOCK = Path("/run/shoal-networks.lock")  # subnets are chosen host-wide, one at a time


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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


def _drop_unused_cluster_networks(state: NetworkFile) -> list[NetworkRecord]:
    """Networks made for a scheduler's containers that no endpoint uses any more, taken out
    of ``state`` (their bridges are the caller's to delete)."""
    used = {e.network for e in state.endpoints.values()}
    gone = [n for n in state.networks.values() if n.from_cluster and n.spec.name not in used]
    for network in gone:
        del state.networks[network.spec.name]
    return gone


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


def allocate(state: NetworkFile, network: NetworkRecord, container_id: str, name: str,
             spec: ContainerSpec) -> EndpointRecord:
    """The container's endpoint on ``network``, put in ``state`` (held under its lock): an
    address no other endpoint holds (``--ip`` if free) and its published ports."""
    held = [e.ip for e in state.endpoints.values() if e.network == network.spec.name
            and e.container_id != container_id]
    ip = ipam.next_address(ipaddress.IPv4Network(network.subnet), network.gateway, held, spec.ip)
    endpoint = EndpointRecord(container_id=container_id, name=name, network=network.spec.name,
                              ip=ip, ports=_publish(state, container_id, spec.ports))
    state.endpoints[container_id] = endpoint
    return endpoint


class Networks:
    def __init__(self, state_dir: Path, scope: str) -> None:
        self.state = NetworkState(state_dir / "networks")
        self.scope = scope[:6]
        self.table = nat.table_name(scope[:12])
        # This worker's advertised IPv4 address, the VXLAN devices' local one: set when it
        # joins a cluster ("" on a standalone worker, which has no overlay networks).
        self.vtep = ""
        # The cluster's overlay endpoints, as the scheduler last told them (set_endpoints).
        self.endpoints: list[OverlayEndpoint] = []
        self._programming = asyncio.Lock()

    # --- names -----------------------------------------------------------------------------
    def bridge_name(self, network_id: str) -> str:
        return f"b{self.scope}{network_id[:8]}"

    def veth_name(self, container_id: str) -> str:
        return f"v{self.scope}{container_id[:8]}"

    def vxlan_name(self, network_id: str) -> str:
        return f"x{self.scope}{network_id[:8]}"

    # --- start-up and teardown -------------------------------------------------------------
    async def open(self, live: set[str]) -> None:
        """The default network made if missing, endpoints of containers not in ``live``
        released (with their veths), bridges made again (after a reboot), rules rebuilt."""
        await asyncio.to_thread(self._open, live)

    def _open(self, live: set[str]) -> None:
        with self.state.change() as state:
            if DEFAULT_NETWORK not in state.networks:
                self._add(state, NetworkSpec(name=DEFAULT_NETWORK))
            for container_id in [c for c in state.endpoints if c not in live]:
                log.info("released the endpoint of a container that is gone",
                         container_id=container_id, ip=state.endpoints[container_id].ip)
                del state.endpoints[container_id]
            for network in _drop_unused_cluster_networks(state):
                _delete_network_links(network)
            for network in state.networks.values():
                links.ensure_bridge(network.bridge, network.gateway,
                                    ipaddress.IPv4Network(network.subnet).prefixlen)
            known = {self.veth_name(c) for c in state.endpoints}
            for veth in links.links_named(f"v{self.scope}"):
                if veth not in known:
                    links.delete_link(veth)
            # An overlay's VXLAN device is made again (with what it forwards) when the
            # worker has joined and knows its address and the cluster's endpoints.
            devices = {n.vxlan for n in state.networks.values() if n.vxlan}
            for device in links.links_named(f"x{self.scope}"):
                if device not in devices:
                    links.delete_link(device)
            try:
                nat.apply(nat.render(self.table, state.networks.values(),
                                     state.endpoints.values()))
            except Unsupported as exc:
                # The worker still runs containers on none and host; a bridge network's
                # container is refused at create with the same reason.
                log.warning("bridge networks unavailable", reason=str(exc))

    async def tear_down(self) -> None:
        """Everything of this worker's networks off the host: bridges, veths, its table."""
        def run() -> None:
            for name in (links.links_named(f"v{self.scope}") +
                         links.links_named(f"x{self.scope}") +
                         links.links_named(f"b{self.scope}")):
                links.delete_link(name)
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
        if spec.name in NOT_BRIDGES:
            raise Conflict(f"{spec.name} is a predefined network: choose another name")
        if spec.gateway and not spec.subnet:
            raise InvalidArgument("--gateway needs --subnet")

        def run() -> NetworkInfo:
            with self.state.change() as state:
                if spec.name in state.networks:
                    raise Conflict(f"network {spec.name} already exists",
                                   details={"network": spec.name})
                record = self._add(state, spec)
                nat.apply(nat.render(self.table, state.networks.values(),
                                     state.endpoints.values()))
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
                nat.apply(nat.render(self.table, state.networks.values(),
                                     state.endpoints.values()))
                _delete_network_links(record)
        await asyncio.to_thread(run)

    # --- endpoints ---------------------------------------------------------------------------
    async def prepare(self, container_id: str, name: str, spec: ContainerSpec, hostname: str,
                      directory: Path) -> list[dict[str, object]]:
        """The container's endpoint (on a bridge network) and its files; the bind mounts."""
        return await asyncio.to_thread(self._prepare, container_id, name, spec, hostname,
                                       directory)

    def _prepare(self, container_id: str, name: str, spec: ContainerSpec, hostname: str,
                 directory: Path) -> list[dict[str, object]]:
        ip = ""
        if spec.network not in NOT_BRIDGES:
            with self.state.change() as state:
                network = state.networks.get(spec.network)
                made = network is None and spec.network_spec is not None
                if network is None and spec.network_spec is not None:
                    network = self._add(state, spec.network_spec)
                    network.from_cluster = True
                if network is None:
                    raise NotFound(f"network {spec.network} not found",
                                   details={"network": spec.network})
                ip = allocate(state, network, container_id, name, spec).ip
                nat.apply(nat.render(self.table, state.networks.values(),
                                     state.endpoints.values()))
                if made and network.vxlan:
                    vxlan.program(network.vxlan, self._peers(network.spec.name))
        return files.write_files(directory, spec, hostname, ip)

    def ports(self, container_id: str) -> list[PortMapping] | None:
        endpoint = self.state.read().endpoints.get(container_id)
        return None if endpoint is None else endpoint.ports

    def address(self, container_id: str) -> str:
        endpoint = self.state.read().endpoints.get(container_id)
        return "" if endpoint is None else endpoint.ip

    async def attach(self, container_id: str, pid: int) -> None:
        """The container's veth into the namespace of its init (``pid``), before it starts."""
        state = await asyncio.to_thread(self.state.read)
        endpoint = state.endpoints.get(container_id)
        if endpoint is None:
            return
        network = state.networks[endpoint.network]
        prefixlen = ipaddress.IPv4Network(network.subnet).prefixlen
        # An internal network has no way out: no default route either.
        gateway = None if network.spec.internal else network.gateway
        overlay = bool(network.vxlan)  # its MAC is the one other hosts' entries name
        await asyncio.to_thread(links.attach, pid, self.veth_name(container_id), network.bridge,
                                endpoint.ip, prefixlen, gateway,
                                mtu=vxlan.OVERLAY_MTU if overlay else 0,
                                mac=mac_of(endpoint.ip) if overlay else "")

    async def detach(self, container_id: str) -> None:
        """After the container's exit: its veth pair deleted now (the kernel frees a dead
        namespace's links only later, from a work queue); the address stays its own."""
        await asyncio.to_thread(links.delete_link, self.veth_name(container_id))

    async def release(self, container_id: str) -> None:
        """The container's address and ports given back, its veth and rules gone."""
        def run() -> None:
            with self.state.change() as state:
                if state.endpoints.pop(container_id, None) is None:
                    return
                gone = _drop_unused_cluster_networks(state)
                nat.apply(nat.render(self.table, state.networks.values(),
                                     state.endpoints.values()))
            links.delete_link(self.veth_name(container_id))
            for network in gone:
                _delete_network_links(network)
        await asyncio.to_thread(run)

    # --- overlay endpoints -------------------------------------------------------------------
    def _peers(self, network: str) -> set[vxlan.Peer]:
        """The remote containers on ``network`` (the local ones are on the bridge itself)."""
        return {vxlan.Peer(e.ip, e.mac, e.vtep) for e in self.endpoints
                if e.network == network and e.vtep and e.vtep != self.vtep}

    async def set_endpoints(self, endpoints: list[OverlayEndpoint]) -> None:
        """The cluster's overlay endpoints (the whole list, replacing the last one): every
        overlay network on this host made whole (after a restart) and its forwarding and
        neighbour entries made exactly the remote endpoints'."""
        self.endpoints = list(endpoints)

        def run() -> None:
            state = self.state.read()
            for network in state.networks.values():
                if not network.vxlan:
                    continue
                if self.vtep:
                    vxlan.ensure_vxlan(network.vxlan, network.spec.vni, self.vtep,
                                       network.bridge)
                added, removed = vxlan.program(network.vxlan, self._peers(network.spec.name))
                if added or removed:
                    log.info("overlay peers programmed", network=network.spec.name,
                             added=added, removed=removed)
        async with self._programming:
            await asyncio.to_thread(run)


def _delete_network_links(network: NetworkRecord) -> None:
    """A network's devices off the host: its VXLAN device (with every forwarding and
    neighbour entry on it) and its bridge."""
    if network.vxlan:
        links.delete_link(network.vxlan)
    links.delete_link(network.bridge)
