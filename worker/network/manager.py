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

The networks themselves (bridges, VXLAN devices, the nftables table, create/ls/inspect/rm/
prune) are ``HostNetworks``' (``worker.network.host``), which ``Networks`` extends; the choice
of a container's address and host ports is ``worker.network.allocation``'s.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import structlog

from protocol.errors import Conflict, NotFound, Unsupported
from protocol.observed import EndpointSettings
from protocol.specs import ContainerSpec, NetworkSpec, OverlayEndpoint, PortMapping
from protocol.subnets import endpoint_id, mac_of
from worker.network import files, links, vxlan
from worker.network.allocation import allocate, ports_to_publish
from worker.network.host import (
    DEFAULT_NETWORK,
    HostNetworks,
    delete_network_links,
    drop_unused_cluster_networks,
)
from worker.network.names import EVERY_NETWORK, NameEntry, NameTable
from worker.network.proxy import PortProxy
from worker.network.resolver import EmbeddedResolver
from worker.network.state import EndpointRecord, NetworkFile, NetworkRecord, endpoint_key

log = structlog.get_logger("shoal.worker.network")

NOT_BRIDGES = ("none", "host")


class Networks(HostNetworks):
    def __init__(self, state_dir: Path, scope: str,
                 resolv_conf: Path = files.HOST_RESOLV) -> None:
        super().__init__(state_dir, scope)
        self.resolv_conf = resolv_conf
        self.names = NameTable()
        self.resolver = EmbeddedResolver(self.names, resolv_conf)
        self.proxy = PortProxy()
        self._running: dict[str, int] = {}  # container id -> its init's pid, while it runs
        # Containers whose veths may be on the host: from their attach (or found running) to
        # their detach. Detach and release, each called more than once on a container's way
        # out, spare the netlink round trips once its veths are deleted.
        self._attached: set[str] = set()
        # The cluster's overlay endpoints, as the scheduler last told them (set_endpoints).
        self.endpoints: list[OverlayEndpoint] = []
        self._programming = asyncio.Lock()

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
            for network in drop_unused_cluster_networks(state):
                delete_network_links(network)
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
                gone = drop_unused_cluster_networks(state)
                if mine:
                    self._apply_rules(state)
                # Under the state's lock: a container's prepare making the network again,
                # or ``set_endpoints`` making its VXLAN device again, waits for this.
                if attached:
                    links.delete_links({self.veth_name(container_id)} |
                                       {self._veth_of(e) for e in mine})
                for network in gone:
                    delete_network_links(network)
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
                gone = drop_unused_cluster_networks(state)
                if endpoint.ports or gone:
                    self._apply_rules(state)
            links.delete_link(self._veth_of(endpoint))
            for unused in gone:
                delete_network_links(unused)
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
