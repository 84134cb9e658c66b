"""The cluster's networks: ``network create|ls|inspect|rm`` on a scheduler, kept in etcd
(``networks/<name>``), and the network a submitted container names looked up there.

A bridge network is made on each node that runs a container on it: the record keeps the spec
as asked, the spec rides in the container's (``network_spec``) to its node, and each node
chooses the subnet of its own bridge (unless the spec gives one) and removes the bridge with
its last container there. ``bridge`` is every node's default network; ``none`` and ``host`` are
no networks at all. Writes are the leader's, fenced by its leadership; reads any scheduler's.

An overlay network spans the hosts: at create it takes a VXLAN network identifier and its
subnet (``--subnet`` or a /24 of the overlay pool, ``overlay_ipam``) in etcd, the spec that rides
to a node carries both, and each container placed on it gets its address from the cluster
(``overlay_leader``). A standalone container (``run`` without ``--replicas``) joins one only if it
was made ``--attachable``, as in Docker.

``rm`` is refused while a container that is not removed names the network (as its own or as
one connected later), saying which (the check and the delete are two steps: a container
submitted between them still gets the network on its node, from its own spec); ``prune``
removes every network none names. ``connect`` and ``disconnect`` are ``connections``'.
``inspect`` lists the containers on the network with the node each is placed on (and its
address, on an overlay).
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable

import msgspec

from protocol.errors import Conflict, InvalidArgument, NotFound, Unsupported
from protocol.messages import (
    ConnectNetwork,
    CreateContainer,
    CreateContainers,
    CreateNetwork,
    DisconnectNetwork,
    InspectNetwork,
    ListNetworks,
    Message,
    NetworkCreated,
    NetworkInspected,
    NetworkList,
    NetworksPruned,
    Ok,
    PruneNetworks,
    RemoveNetwork,
    SubmitApp,
    SubmitJob,
)
from protocol.specs import (
    DEFAULT_NETWORK_MODE,
    ContainerSpec,
    Endpoint,
    NetworkInfo,
    NetworkSpec,
    network_container,
)
from protocol.subnets import gateway_of, parse_subnet
from protocol.validation import NETWORKS as NETWORKS_WITHOUT_NAMESPACE
from protocol.validation import PREDEFINED_NETWORKS
from scheduler.cluster.leader import Leader
from scheduler.cluster.overlay_ipam import default_subnet, give_back_vni, take_vni
from scheduler.placement.request import platform_needs
from scheduler.store import CONTAINERS, NETWORKS, ContainerRecord, Store

DEFAULT_NETWORK = "bridge"
PREDEFINED = PREDEFINED_NETWORKS
DEFAULT_INFO = NetworkInfo(id=DEFAULT_NETWORK, spec=NetworkSpec(name=DEFAULT_NETWORK))


class ClusterNetworks:
    def __init__(self, store: Store, lead: Callable[[], Leader]) -> None:
        self.store = store
        self.lead = lead  # the leader, or Unavailable naming it

    async def handle(self, message: Message) -> Message:
        match message:
            case CreateNetwork(spec=spec):
                return NetworkCreated(id=(await self._create(spec)).id)
            case ListNetworks():
                found = [r.value async for r in self.store.list(NETWORKS)]
                return NetworkList(networks=[DEFAULT_INFO, *sorted(
                    found, key=lambda n: n.spec.name)])
            case InspectNetwork(name=name):
                return NetworkInspected(info=await self._inspect(name))
            case RemoveNetwork(name=name):
                await self._remove(name)
                return Ok()
            case PruneNetworks():
                return NetworksPruned(names=await self._prune())
            case ConnectNetwork() | DisconnectNetwork():
                raise Unsupported("network connect and disconnect change the container's "
                                  "record (scheduler/cluster/connections.py)")
        raise Unsupported(f"not a network verb: {type(message).__name__}")

    async def _create(self, spec: NetworkSpec) -> NetworkInfo:
        leader = self.lead()
        if spec.name in PREDEFINED:
            raise Conflict(f"{spec.name} is a predefined network: choose another name")
        if spec.gateway and not spec.subnet:
            raise InvalidArgument("--gateway needs --subnet")
        if spec.vni:
            raise InvalidArgument("a network's VNI is the cluster's to choose")
        if spec.driver == "overlay":
            spec = await self._overlay(spec, leader)
        info = NetworkInfo(id=os.urandom(32).hex(), spec=spec, created_at=time.time(),
                           subnet=spec.subnet, gateway=spec.gateway)
        try:
            await self.store.create(NETWORKS, spec.name, info, fence=leader.leadership)
        except Conflict:
            if spec.vni:
                await give_back_vni(self.store, spec.vni, spec.name, leader.leadership)
            raise Conflict(f"network {spec.name} already exists",
                           details={"network": spec.name}) from None
        return info

    async def _overlay(self, spec: NetworkSpec, leader: Leader) -> NetworkSpec:
        """The overlay's spec as the cluster keeps it: VNI, subnet and gateway chosen."""
        others = [ipaddress.IPv4Network(r.value.spec.subnet)
                  async for r in self.store.list(NETWORKS)
                  if r.value.spec.driver == "overlay" and r.value.spec.subnet]
        subnet = parse_subnet(spec.subnet) if spec.subnet else None
        if subnet is not None:
            clash = [str(o) for o in others if o.overlaps(subnet)]
            if clash:
                raise Conflict(f"subnet {subnet} overlaps overlay subnet {clash[0]}",
                               details={"subnet": str(subnet)})
        vni = await take_vni(self.store, spec.name, leader.leadership)
        if subnet is None:
            subnet = default_subnet(vni, others)
        try:
            gateway = gateway_of(subnet, spec.gateway)
        except InvalidArgument:
            await give_back_vni(self.store, vni, spec.name, leader.leadership)
            raise
        return msgspec.structs.replace(spec, vni=vni, subnet=str(subnet), gateway=gateway)

    async def find(self, ref: str) -> NetworkInfo:
        """The network by name, id or unique id prefix (``bridge``: every node's own)."""
        if ref == DEFAULT_NETWORK:
            return DEFAULT_INFO
        if ref and "/" not in ref:
            got = await self.store.get(NETWORKS, ref)
            if got is not None:
                return got.value
        matches = [r.value async for r in self.store.list(NETWORKS)
                   if ref and r.value.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"no such network: {ref}", details={"network": ref})

    async def _users(self) -> dict[str, list[tuple[str, ContainerRecord]]]:
        """Containers that are not removed, by the network they name."""
        found: dict[str, list[tuple[str, ContainerRecord]]] = {}
        async for r in self.store.list(CONTAINERS, page_size=5000):
            if r.value.desired != "removed" and r.value.schedule_state != "removed":
                for network in (r.value.spec.network, *(a.name for a in r.value.spec.connected)):
                    found.setdefault(network, []).append((r.id, r.value))
        return found

    async def _inspect(self, ref: str) -> NetworkInfo:
        """The network with the containers on it: their cluster address on an overlay (each
        node chooses its own on a bridge network) and the node each is placed on."""
        info = await self.find(ref)
        users = (await self._users()).get(info.spec.name, [])
        return msgspec.structs.replace(info, endpoints=[
            Endpoint(container_id=cid, name=cid, ip=record.addresses.get(info.spec.name, ""),
                     node_id=record.node_id)
            for cid, record in sorted(users, key=lambda u: u[0])])

    async def _prune(self) -> list[str]:
        """Every network made here that no container names removed (as ``rm`` would)."""
        leader = self.lead()
        used = await self._users()
        pruned: list[str] = []
        async for r in self.store.list(NETWORKS):
            name = r.value.spec.name
            if name in used:
                continue
            await self.store.delete(NETWORKS, name, r.mod_revision, fence=leader.leadership)
            if r.value.spec.vni:
                await give_back_vni(self.store, r.value.spec.vni, name, leader.leadership)
            pruned.append(name)
        return sorted(pruned)

    async def _remove(self, ref: str) -> None:
        leader = self.lead()
        if ref in PREDEFINED:
            raise Conflict(f"{ref} is a predefined network: it cannot be removed")
        info = await self.find(ref)
        name = info.spec.name
        users = sorted(cid for cid, _ in (await self._users()).get(name, []))
        if users:
            shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5
                                             else "")
            raise Conflict(f"network {name} is in use by {shown}",
                           details={"containers": ",".join(users)[:200]})
        got = await self.store.get(NETWORKS, name)
        if got is None:
            raise NotFound(f"no such network: {ref}", details={"network": ref})
        await self.store.delete(NETWORKS, name, got.mod_revision, fence=leader.leadership)
        if got.value.spec.vni:
            await give_back_vni(self.store, got.value.spec.vni, name, leader.leadership)

    async def resolve(self, message: Message) -> Message:
        """A submission with each container's network looked up: a network made with
        ``network create`` rides in its spec (``network_spec``) to the node; an unknown one
        is refused before anything is made."""
        if isinstance(message, CreateContainer | SubmitJob):
            return msgspec.structs.replace(message, spec=await self._with_network(
                message.spec, standalone=isinstance(message, CreateContainer)))
        if isinstance(message, SubmitApp):
            containers = [await self._with_network(s, standalone=False)
                          for s in message.app.containers]
            return msgspec.structs.replace(message, app=msgspec.structs.replace(
                message.app, containers=containers))
        if isinstance(message, CreateContainers):
            return msgspec.structs.replace(message, specs=[
                await self._with_network(s, standalone=True) for s in message.specs])
        return message

    async def _with_network(self, spec: ContainerSpec, *, standalone: bool) -> ContainerSpec:
        if spec.network not in (*NETWORKS_WITHOUT_NAMESPACE, DEFAULT_NETWORK_MODE) and all(
                os_name == "windows" for os_name, _, _ in platform_needs(spec, lenient=True)):
            raise Unsupported(f"--network {spec.network}: a Windows worker runs containers "
                              "with its process driver, on the host's network only (no bridge "
                              "or overlay network); use --network host or leave it out",
                              details={"network": spec.network})
        own = await self._cluster_network(spec.network, standalone)
        connected = [msgspec.structs.replace(a, spec=await self._cluster_network(
            a.name, standalone)) for a in spec.connected]
        if own is None and not connected:
            return spec
        return msgspec.structs.replace(spec, network_spec=own or spec.network_spec,
                                       connected=connected)

    async def _cluster_network(self, name: str, standalone: bool) -> NetworkSpec | None:
        """The cluster's network ``name`` for a container joining it (None: a predefined
        one, every node's own; or ``container:NAME``, that container's)."""
        if name in PREDEFINED or network_container(name):
            return None
        got = await self.store.get(NETWORKS, name) if "/" not in name else None
        if got is None:
            raise NotFound(f"network {name} not found: make it with network create",
                           details={"network": name})
        network = got.value.spec
        if network.driver == "overlay" and standalone and not network.attachable:
            raise Conflict(f"overlay network {name} is not attachable: a container "
                           "joins it as a job (run --replicas N), or make the network with "
                           "--attachable", details={"network": name})
        return network
