"""``Networks``: a worker's bridge networks and its containers' endpoints on them.

The driver asks it for a container's endpoint when it prepares the container (an address from
the network's subnet, host ports for ``-p``, /etc/hosts, /etc/hostname and /etc/resolv.conf),
to attach it once the runtime has made the container's namespace (a veth pair into it, before
the container's program starts), and to release it when the container is removed. A running
container can be connected to more networks and disconnected from them. While a container
runs, its names are in the ``NameTable`` its resolver at 127.0.0.11 answers from, and its
published ports have a userland proxy on the host. At start it settles what a crash left:
endpoints of containers that are gone are released, their veths deleted, and the nftables
table is rebuilt from the state.

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
import hashlib
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
    JOB_LABEL,
    ContainerSpec,
    Endpoint,
    EndpointSettings,
    NetworkInfo,
    NetworkSpec,
    OverlayEndpoint,
    PortMapping,
)
from protocol.subnets import endpoint_id, mac_of
from protocol.validation import PREDEFINED_NETWORKS, parse_exposed
from worker.network import files, ipam, links, nat, vxlan
from worker.network.names import EVERY_NETWORK, NameEntry, NameTable
from worker.network.proxy import PortProxy
from worker.network.resolver import EmbeddedResolver
from worker.network.state import (
    EndpointRecord,
    NetworkFile,
    NetworkRecord,
    NetworkState,
    endpoint_key,
)

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


class Networks:
    def __init__(self, state_dir: Path, scope: str,
                 resolv_conf: Path = files.HOST_RESOLV) -> None:
        self.state = NetworkState(state_dir / "networks")
        self.scope = scope[:6]
        self.table = nat.table_name(scope[:12])
        self.resolv_conf = resolv_conf
        self.names = NameTable()
        self.resolver = EmbeddedResolver(self.names, resolv_conf)
        self.proxy = PortProxy()
        self._running: dict[str, int] = {}  # container id -> its init's pid, while it runs
        # Containers whose veths may be on the host: from their attach (or found running) to
        # their detach. Detach and release, each called more than once on a container's way
        # out, spare the netlink round trips once its veths are deleted.
        self._attached: set[str] = set()
        # This worker's advertised IPv4 address, the VXLAN devices' local one: set when it
        # joins a cluster ("" on a standalone worker, which has no overlay networks).
        self.vtep = ""
        # The cluster's overlay endpoints, as the scheduler last told them (set_endpoints).
        self.endpoints: list[OverlayEndpoint] = []
        self._programming = asyncio.Lock()
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

    # --- start-up and teardown -------------------------------------------------------------
    async def open(self, live: set[str]) -> None:
        """The default network made if missing, endpoints of containers not in ``live``
        released (with their veths), bridges made again (after a reboot), rules rebuilt."""
        await asyncio.to_thread(self._open, live)

    def _open(self, live: set[str]) -> None:
        with self.state.change() as state:
            if DEFAULT_NETWORK not in state.networks:
                self._add(state, NetworkSpec(name=DEFAULT_NETWORK))
            for key, endpoint in list(state.endpoints.items()):
                if endpoint.container_id not in live:
                    log.info("released the endpoint of a container that is gone",
                             container_id=endpoint.container_id, ip=endpoint.ip)
                    del state.endpoints[key]
            for network in _drop_unused_cluster_networks(state):
                _delete_network_links(network)
            for network in state.networks.values():
                links.ensure_bridge(network.bridge, network.gateway,
                                    ipaddress.IPv4Network(network.subnet).prefixlen)
            known = {self._veth_of(e) for e in state.endpoints.values()}
            for veth in links.links_named(f"v{self.scope}"):
                if veth not in known:
                    links.delete_link(veth)
            # An overlay's VXLAN device is made again (with what it forwards) when the
            # worker has joined and knows its address and the cluster's endpoints.
            devices = {n.vxlan for n in state.networks.values() if n.vxlan}
            for device in links.links_named(f"x{self.scope}"):
                if device not in devices:
                    links.delete_link(device)
            self._applied_rules = None  # rebuilt whatever the kernel holds now
            try:
                self._apply_rules(state)
            except Unsupported as exc:
                # The worker still runs containers on none and host; a bridge network's
                # container is refused at create with the same reason.
                log.warning("bridge networks unavailable", reason=str(exc))

    async def close(self) -> None:
        """The resolvers' and proxies' sockets closed (the containers keep running; the next
        worker opens them again as it finds them)."""
        await self.resolver.close()
        await self.proxy.close()
        self._running.clear()

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
                _delete_network_links(record)
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
                _delete_network_links(network)
            return sorted(n.spec.name for n in gone)
        return await asyncio.to_thread(run)

    # --- endpoints ---------------------------------------------------------------------------
    async def prepare(self, container_id: str, name: str, spec: ContainerSpec, hostname: str,
                      directory: Path, image_exposed: list[str] | None = None
                      ) -> list[dict[str, object]]:
        """The container's endpoints (on its network and those its spec lists as connected)
        and its files; the bind mounts."""
        return await asyncio.to_thread(self._prepare, container_id, name, spec, hostname,
                                       directory, image_exposed or [])

    def _prepare(self, container_id: str, name: str, spec: ContainerSpec, hostname: str,
                 directory: Path, image_exposed: list[str]) -> list[dict[str, object]]:
        ip = ""
        connected: list[EndpointRecord] = []
        if spec.network not in NOT_BRIDGES:
            with self.state.change() as state:
                network = self._joined(state, spec.network, spec.network_spec)
                ip = allocate(state, network, container_id, name, spec,
                              ports=ports_to_publish(spec, image_exposed)).ip
                # Networks a scheduler's container was connected to (its record keeps them):
                # eth1, eth2... in their order, as when they were connected.
                for number, attachment in enumerate(spec.connected, start=1):
                    joined = self._joined(state, attachment.name, attachment.spec)
                    connected.append(allocate(
                        state, joined, container_id, name, spec, ports=[], ip=attachment.ip,
                        aliases=list(attachment.aliases), ifname=f"eth{number}",
                        veth=self._connected_veth(container_id, attachment.name)))
                self._apply_rules(state)
        # Docker's model: the default bridge keeps the host's resolvers, a user-defined
        # network gets the embedded one.
        embedded = any(n not in (*NOT_BRIDGES, DEFAULT_NETWORK)
                       for n in (spec.network, *(e.network for e in connected)))
        mounts = files.write_files(directory, spec, hostname, ip, embedded_dns=embedded,
                                   resolv_conf=self.resolv_conf)
        for endpoint in connected:
            files.add_host_line(directory, endpoint.ip, hostname or name)
        return mounts

    def _joined(self, state: NetworkFile, name: str, cluster_network: NetworkSpec | None
                ) -> NetworkRecord:
        """The network ``name`` a container joins (held under the state's lock): made here
        from the scheduler's ``cluster_network`` if this host has none of that name yet
        (removed again with its last endpoint), with an overlay's remote endpoints
        programmed."""
        network = state.networks.get(name)
        if network is not None:
            return network
        if cluster_network is None:
            raise NotFound(f"network {name} not found", details={"network": name})
        network = self._add(state, cluster_network)
        network.from_cluster = True
        if network.vxlan:
            vxlan.program(network.vxlan, self._peers(network.spec.name))
        return network

    def ports(self, container_id: str) -> list[PortMapping] | None:
        endpoint = self.state.read().first_endpoint(container_id)
        return None if endpoint is None else endpoint.ports

    def settings(self, container_id: str) -> list[EndpointSettings]:
        """The container's endpoints as inspect shows them (Docker's
        ``NetworkSettings.Networks``)."""
        state = self.state.read()
        shown = []
        for endpoint in state.endpoints_of(container_id):
            network = state.networks.get(endpoint.network)
            if network is None:
                continue
            shown.append(EndpointSettings(
                network=endpoint.network, network_id=network.id,
                endpoint_id=endpoint_id(container_id, endpoint.network),
                ip=endpoint.ip, prefix_len=ipaddress.IPv4Network(network.subnet).prefixlen,
                gateway="" if network.spec.internal else network.gateway,
                mac=mac_of(endpoint.ip), aliases=list(endpoint.aliases)))
        return shown

    def networks_of(self, container_id: str) -> list[str]:
        """The networks the container has an endpoint on."""
        return [e.network for e in self.state.read().endpoints_of(container_id)]

    def address(self, container_id: str) -> str:
        endpoint = self.state.read().first_endpoint(container_id)
        return "" if endpoint is None else endpoint.ip

    async def attach(self, container_id: str, pid: int) -> None:
        """The container's veths into the namespace of its init (``pid``), before it starts
        (one per network it is on); its resolver and port proxies opened, its names in."""
        state = await asyncio.to_thread(self.state.read)
        self._attached.add(container_id)
        for endpoint in state.endpoints_of(container_id):
            await asyncio.to_thread(self._attach_endpoint, state, endpoint, pid)
        await self.resume(container_id, pid, state)

    def _attach_endpoint(self, state: NetworkFile, endpoint: EndpointRecord, pid: int) -> None:
        network = state.networks[endpoint.network]
        prefixlen = ipaddress.IPv4Network(network.subnet).prefixlen
        # An internal network has no way out: no default route either; only the first
        # network gives the default route, as in Docker.
        gateway = None if network.spec.internal or endpoint.ifname != "eth0" \
            else network.gateway
        # Docker's MAC from the address (on an overlay, the one other hosts' entries name).
        links.attach(pid, self._veth_of(endpoint), network.bridge, endpoint.ip, prefixlen,
                     gateway, ifname=endpoint.ifname,
                     mtu=vxlan.OVERLAY_MTU if network.vxlan else 0, mac=mac_of(endpoint.ip))

    async def resume(self, container_id: str, pid: int, state: NetworkFile | None = None
                     ) -> None:
        """A running container's resolver, proxies and names (at its start, or found
        running by a restarted worker)."""
        if state is None:
            state = await asyncio.to_thread(self.state.read)
        endpoints = state.endpoints_of(container_id)
        if not endpoints:
            return
        self._attached.add(container_id)
        self._running[container_id] = pid
        first = endpoints[0]
        if any(e.network != DEFAULT_NETWORK for e in endpoints):
            await self.resolver.serve(container_id, pid, first.dns)
        if first.ports:
            await self.proxy.start(container_id, first.ip, first.ports)
        self._refresh_names(state)

    def _refresh_names(self, state: NetworkFile) -> None:
        self.names.update_local(
            NameEntry(network=e.network, container_id=e.container_id, ip=e.ip, name=e.name,
                      job=e.job, aliases=tuple(e.aliases))
            for e in state.endpoints.values() if e.container_id in self._running)

    async def _stop_serving(self, container_id: str) -> None:
        self._running.pop(container_id, None)
        await self.resolver.stop(container_id)
        await self.proxy.stop(container_id)

    async def detach(self, container_id: str) -> None:
        """After the container's exit: its names out, its resolver and proxies closed, its
        veth pairs deleted now (the kernel frees a dead namespace's links only later, from a
        work queue); the addresses stay its own."""
        if container_id not in self._attached:
            return  # detached already (or never attached): nothing serves it, no veth
        await self._stop_serving(container_id)
        state = await asyncio.to_thread(self.state.read)
        self._refresh_names(state)
        await asyncio.to_thread(links.delete_links, self._veths(container_id, state))
        self._attached.discard(container_id)

    def _veths(self, container_id: str, state: NetworkFile) -> list[str]:
        """The host ends of the container's veths."""
        return sorted({self.veth_name(container_id)} | {
            self._veth_of(e) for e in state.endpoints_of(container_id)})

    async def release(self, container_id: str) -> None:
        """The container's addresses and ports given back, its veths and rules gone."""
        await self._stop_serving(container_id)
        attached = container_id in self._attached
        self._attached.discard(container_id)

        def run() -> NetworkFile:
            with self.state.change() as state:
                mine = state.endpoints_of(container_id)
                for endpoint in mine:
                    del state.endpoints[endpoint_key(container_id, endpoint.network)]
                gone = _drop_unused_cluster_networks(state)
                if mine:
                    self._apply_rules(state)
                # Under the state's lock: a container's prepare making the network again,
                # or ``set_endpoints`` making its VXLAN device again, waits for this.
                if attached:
                    links.delete_links({self.veth_name(container_id)} |
                                       {self._veth_of(e) for e in mine})
                for network in gone:
                    _delete_network_links(network)
            return state
        self._refresh_names(await asyncio.to_thread(run))

    async def rename(self, container_id: str, name: str) -> None:
        """The container's endpoints answer to its new name (its resolver's names at once)."""
        def run() -> NetworkFile:
            with self.state.change() as state:
                for endpoint in state.endpoints_of(container_id):
                    endpoint.name = name
            return state
        self._refresh_names(await asyncio.to_thread(run))

    async def connect(self, ref: str, container_id: str, name: str, spec: ContainerSpec,
                      directory: Path, *, ip: str = "", aliases: list[str] | None = None,
                      hostname: str = "", cluster_network: NetworkSpec | None = None,
                      image_exposed: list[str] | None = None, again_ok: bool = False
                      ) -> EndpointRecord:
        """The container on one more network: an address there, a veth into its namespace
        now if it runs (``ethN``), a line in its /etc/hosts, its names on that network. A
        scheduler's network (``cluster_network``, a bridge or an overlay, with the address the
        cluster took as ``ip``) is made here if this host has none of that name yet, as for
        a container placed on it. Back on its own network
        (``spec.network``, after a disconnect, as Compose 1.29 does before a start to set its
        aliases), its ports are published there again, as at create. ``again_ok``: a container
        already on the network is left as it is (the scheduler's connect and its resent
        assignment may both carry one out), not a conflict."""
        def run() -> tuple[EndpointRecord, NetworkFile, bool]:
            with self.state.change() as state:
                if cluster_network is not None:
                    self._joined(state, cluster_network.name, cluster_network)
                    self._apply_rules(state)
                network = self._find(state, ref)
                on = state.endpoints.get(endpoint_key(container_id, network.spec.name))
                if on is not None and again_ok:
                    return on, state, False
                if on is not None:
                    raise Conflict(f"container {name or container_id} is already on network "
                                   f"{network.spec.name}",
                                   details={"network": network.spec.name})
                mine = state.endpoints_of(container_id)
                used = {e.ifname for e in mine}
                ifname = next(f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)
                own = network.spec.name == spec.network
                endpoint = allocate(state, network, container_id, name, spec,
                                    ports=ports_to_publish(spec, image_exposed or []) if own
                                    else [], ip=ip,
                                    aliases=aliases or [], ifname=ifname,
                                    veth="" if ifname == "eth0" else
                                    self._connected_veth(container_id, network.spec.name))
                pid = self._running.get(container_id)
                if pid is not None:
                    self._attach_endpoint(state, endpoint, pid)
            files.add_host_line(directory, endpoint.ip, hostname or name)
            return endpoint, state, True
        endpoint, state, made = await asyncio.to_thread(run)
        pid = self._running.get(container_id)
        if made and pid is not None:
            if not self.resolver.serving(container_id) and endpoint.network != DEFAULT_NETWORK:
                await self.resolver.serve(container_id, pid, endpoint.dns)
            self._refresh_names(state)
        return endpoint

    async def disconnect(self, ref: str, container_id: str, directory: Path) -> None:
        """The container off a network: its veth there deleted, its address given back, its
        /etc/hosts line and its names there gone."""
        def run() -> tuple[NetworkFile, EndpointRecord]:
            with self.state.change() as state:
                network = self._find(state, ref)
                endpoint = state.endpoints.pop(endpoint_key(container_id, network.spec.name),
                                               None)
                if endpoint is None:
                    raise NotFound(f"container {container_id[:12]} is not on network "
                                   f"{network.spec.name}",
                                   details={"network": network.spec.name})
                gone = _drop_unused_cluster_networks(state)
                if endpoint.ports or gone:
                    self._apply_rules(state)
            links.delete_link(self._veth_of(endpoint))
            for unused in gone:
                _delete_network_links(unused)
            files.drop_host_line(directory, endpoint.ip)
            return state, endpoint
        state, endpoint = await asyncio.to_thread(run)
        if endpoint.ports:
            await self.proxy.stop(container_id)
        if not state.endpoints_of(container_id):
            await self._stop_serving(container_id)
        elif container_id in self._running and \
                not any(e.network != DEFAULT_NETWORK for e in state.endpoints_of(container_id)):
            await self.resolver.stop(container_id)
        self._refresh_names(state)

    # --- overlay endpoints -------------------------------------------------------------------
    def _peers(self, network: str) -> set[vxlan.Peer]:
        """The remote containers on ``network`` (the local ones are on the bridge itself)."""
        return {vxlan.Peer(e.ip, e.mac, e.vtep) for e in self.endpoints
                if e.network == network and e.vtep and e.vtep != self.vtep}

    async def set_endpoints(self, endpoints: list[OverlayEndpoint]) -> None:
        """The cluster's overlay endpoints (the whole list, replacing the last one): every
        overlay network on this host made whole (after a restart) and its forwarding and
        neighbour entries made exactly the remote endpoints'; the remote running ones' names
        given to the resolvers (this host's own come from its state; containers on a node's
        own network, this one's included, answer on every network)."""
        self.endpoints = list(endpoints)
        self.names.update_remote(
            NameEntry(network=EVERY_NETWORK if e.network == "host" else e.network,
                      container_id=e.container_id, ip=e.ip, name=e.name, job=e.job,
                      aliases=tuple(e.aliases))
            for e in self.endpoints if e.running and not (self.vtep and e.vtep == self.vtep))

        def run() -> None:
            # Under the state's lock, so a device is never made again for a network that a
            # release is taking off the host at the same moment (it would stay behind).
            with self.state.change() as state:
                self._program_overlays(state)
        async with self._programming:
            await asyncio.to_thread(run)

    def _program_overlays(self, state: NetworkFile) -> None:
        """Each overlay network in ``state``: its VXLAN device (made again after a restart
        once this worker knows its address) and exactly the remote endpoints' entries."""
        for network in state.networks.values():
            if not network.vxlan:
                continue
            if self.vtep:
                vxlan.ensure_vxlan(network.vxlan, network.spec.vni, self.vtep, network.bridge)
            added, removed = vxlan.program(network.vxlan, self._peers(network.spec.name))
            if added or removed:
                log.info("overlay peers programmed", network=network.spec.name,
                         added=added, removed=removed)

def _delete_network_links(network: NetworkRecord) -> None:
    """A network's devices off the host: its VXLAN device (with every forwarding and
    neighbour entry on it) and its bridge."""
    if network.vxlan:
        links.delete_link(network.vxlan)
    links.delete_link(network.bridge)
