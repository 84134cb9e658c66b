"""``network connect`` and ``disconnect`` of a cluster container through a scheduler.

A connection is kept in the container's record first: the network joins its spec's
``connected`` list (a ``NetworkAttachment``) and, on an overlay, the address the cluster takes
for it in etcd (``addresses/<network>:<ip>``) joins ``ContainerRecord.addresses``. Then, if
the container holds its node, the node is asked to carry it out: a veth into the running
container's namespace (the network made on that node if it has none yet). A node that refuses
undoes the record. Because the record holds it, the connection outlives a worker restart and a
reschedule (the replacement is made on every network of its spec, with the addresses the
cluster takes for it there), ``inspect`` shows it, and every host with the overlay learns the
new endpoint (forwarding and neighbour entries, names) from the leader's endpoint lists.

A connect or disconnect may reach the node before the node has made the container (its Assign
still in flight, its image being fetched, its create under way). So the cycle that changes the
record also sends the container's Assign again, at the same generation, with the new spec: it
follows the first one on the node's ordered commands channel, and the node puts the copy on
exactly the networks it names once the copy is made (``worker.agent``: ``Reconnect``). The
forwarded request names the copy (``generation``); a node that has not made it answers
not_found, and the connect stands: the resent Assign carries it out. A node that made it
already answers ok, whichever of the two came first.

A disconnect is the reverse: the attachment and its address leave the record (the leader gives
the address back and every host drops the endpoint's entries), then the node deletes the veth.
A container stays on the network it was submitted with (``--network``): only networks
connected later can be disconnected here. A container that does not hold a node (created,
stopped, pending) only has its record changed: it joins the network when it is placed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from protocol.errors import Conflict, NotFound, ShoalError, Unsupported
from protocol.messages import ConnectNetwork, DisconnectNetwork, Message, Ok
from protocol.specs import NetworkAttachment, NetworkInfo
from protocol.validation import NETWORKS as NETWORKS_WITHOUT_NAMESPACE
from protocol.validation import check_network_alias, check_spec, own_network
from scheduler.cluster.cycle import LeaderCycle, Work, occupies_node
from scheduler.cluster.forward import Forwarder, Route
from scheduler.cluster.leader import Leader
from scheduler.cluster.overlay_endpoints import assignment
from scheduler.cluster.work import existing
from scheduler.store import CONTAINERS, ContainerRecord, Store

log = structlog.get_logger("shoal.scheduler")

replace = msgspec.structs.replace
FindNetwork = Callable[[str], Awaitable[NetworkInfo]]
NodeRoute = Callable[..., Awaitable[Route]]
DEFAULT_BRIDGE = "bridge"




def is_standalone(cid: str, record: ContainerRecord) -> bool:
    """A container made by ``run``/``create`` without ``--replicas``, not a job's replica
    nor an app's container (those are named after their job: NAME.N)."""
    return not record.app and record.spec.name in ("", cid)


def _changed(cid: str) -> Conflict:
    return Conflict(f"container {cid} was placed or stopped while being connected; try again",
                    details={"id": cid})


def _put_and_resend(cycle: LeaderCycle, cid: str, record: ContainerRecord) -> None:
    """Stage the record whose networks changed; if it holds its node and was sent there to
    run, the node gets its Assign again (after the commit): the copy ends on exactly those
    networks once made. (One placed by ``create`` gets its first Assign at ``start``.)"""
    cycle.put_container(cid, record)
    staged = cycle.containers.get(cid)
    if staged is not None and occupies_node(staged) and staged.desired == "running":
        cycle.send(staged.node_id, assignment(cid, staged), ("containers", cid))


class Connect(Work):
    """The attachment (and its overlay address, if one was taken) into the record."""

    def __init__(self, cid: str, attachment: NetworkAttachment, address: str, live: bool
                 ) -> None:
        super().__init__()
        self.cid = cid
        self.attachment = attachment
        self.address = address
        self.live = live  # whether the container held its node when the address was chosen

    def stage(self, cycle: LeaderCycle) -> None:
        record = existing(cycle, self.cid)
        if record.schedule_state == "orphaned":
            raise Conflict(f"container {self.cid} is orphaned (node {record.node_id} went "
                           "silent): connect it once its node is back", details={"id": self.cid})
        if occupies_node(record) != self.live:
            raise _changed(self.cid)
        name = self.attachment.name
        if name == own_network(record.spec) or any(a.name == name for a in record.spec.connected):
            raise Conflict(f"container {self.cid} is already on network {name}",
                           details={"network": name, "id": self.cid})
        if record.spec.network in NETWORKS_WITHOUT_NAMESPACE:
            raise Unsupported(f"container {self.cid} is on --network {record.spec.network}: "
                              f"it cannot join network {name}", details={"network": name})
        node = cycle.nodes.get(record.node_id) if record.node_id else None
        if node is not None and occupies_node(record) and node.info.runtime == "process":
            raise Unsupported(f"container {self.cid} runs on node {record.node_id}, whose "
                              "process driver has only the host's network: it cannot join "
                              f"network {name}", details={"network": name, "id": self.cid})
        spec = check_spec(replace(record.spec,
                                  connected=[*record.spec.connected, self.attachment]))
        addresses = {**record.addresses, name: self.address} if self.address \
            else record.addresses
        _put_and_resend(cycle, self.cid, replace(record, spec=spec, addresses=addresses))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("containers", self.cid))
        if error is not None:
            raise error
        return Ok()


class Disconnect(Work):
    """A connected network (and its overlay address) out of the record."""

    def __init__(self, cid: str, network: str) -> None:
        super().__init__()
        self.cid = cid
        self.network = network
        self.node_id = ""  # the node that holds the container, if it holds one

    def stage(self, cycle: LeaderCycle) -> None:
        record = existing(cycle, self.cid)
        if self.network == own_network(record.spec):
            raise Unsupported(f"container {self.cid} was submitted on network {self.network} "
                              "and stays on it (a replacement would be placed on it again): "
                              "only a network connected later can be disconnected",
                              details={"network": self.network, "id": self.cid})
        kept = [a for a in record.spec.connected if a.name != self.network]
        if len(kept) == len(record.spec.connected):
            raise NotFound(f"container {self.cid} is not on network {self.network}",
                           details={"network": self.network, "id": self.cid})
        self.node_id = record.node_id if occupies_node(record) else ""
        addresses = {n: ip for n, ip in record.addresses.items() if n != self.network}
        _put_and_resend(cycle, self.cid, replace(record, spec=replace(record.spec,
                                                                      connected=kept),
                                                 addresses=addresses))

    def finish(self, cycle: LeaderCycle) -> Message | None:
        error = cycle.error(("containers", self.cid))
        if error is not None:
            raise error
        return Ok()


class ClusterConnections:
    def __init__(self, store: Store, lead: Callable[[], Leader], find: FindNetwork,
                 route: NodeRoute, forwarder: Forwarder) -> None:
        self.store = store
        self.lead = lead  # the leader, or Unavailable naming it
        self.find = find  # a network by name, id or id prefix, or NotFound
        self.route = route  # where a node serves its verbs, or Unavailable
        self.forwarder = forwarder

    async def _record(self, cid: str) -> ContainerRecord:
        got = await self.store.get(CONTAINERS, cid)
        if got is None or got.value.desired == "removed":
            raise NotFound(f"no container {cid} in the cluster", details={"id": cid})
        return got.value

    async def connect(self, message: ConnectNetwork) -> Message:
        leader = self.lead()
        cid = message.container
        if message.name in NETWORKS_WITHOUT_NAMESPACE:
            raise Unsupported(f"a running container cannot join --network {message.name}",
                              details={"network": message.name})
        for alias in message.aliases:
            check_network_alias(alias)
        info = await self.find(message.name)
        network = info.spec
        cluster_spec = network if info.id != DEFAULT_BRIDGE else None
        record = await self._record(cid)
        overlay = network.driver == "overlay"
        if overlay and is_standalone(cid, record) and not network.attachable:
            raise Conflict(f"overlay network {network.name} is not attachable: a container "
                           "joins it as a job (run --replicas N), or make the network with "
                           "--attachable", details={"network": network.name})
        live = occupies_node(record)
        address = ""
        if overlay and live:
            address = await leader.overlay.connect(network, cid, message.ip)
        attachment = NetworkAttachment(name=network.name, spec=cluster_spec, ip=message.ip,
                                       aliases=list(message.aliases))
        try:
            await leader.submit(Connect(cid, attachment, address, live))
        except BaseException:
            if address:
                await leader.overlay.release(network.name, address, cid)
            raise
        if not live:
            return Ok()  # it joins the network where it is placed
        entry = leader.containers.get(cid)
        if entry is None or entry.record.node_id != record.node_id or (
                address and entry.record.addresses.get(network.name) != address):
            # Moved in the very cycle that connected it (its node was lost): the new
            # placement took its own addresses and its Assign names every network.
            if address:
                await leader.overlay.release(network.name, address, cid)
            return Ok()
        generation = entry.record.generation
        try:
            route = await self.route(record.node_id, f"container {cid} is on node "
                                     f"{record.node_id}", {"id": cid})
            await self.forwarder.ask(route, lambda reply: replace(
                message, name=network.name, spec=cluster_spec, ip=address or message.ip,
                generation=generation, reply=reply))
        except ShoalError as exc:
            if isinstance(exc, NotFound) and "container" in exc.details:
                # Not made on its node yet: the resent Assign connects it once it is.
                log.info("connected before its node made the container", container_id=cid,
                         network=network.name)
                return Ok()
            log.info("the node refused a connect; the record is undone", container_id=cid,
                     network=network.name)
            await leader.submit(Disconnect(cid, network.name))
            raise
        return Ok()

    async def disconnect(self, message: DisconnectNetwork) -> Message:
        leader = self.lead()
        cid = message.container
        record = await self._record(cid)
        name = message.name
        if name != own_network(record.spec) and all(a.name != name for a in record.spec.connected):
            name = (await self.find(name)).spec.name  # an id or an id prefix
        work = Disconnect(cid, name)
        await leader.submit(work)
        if not work.node_id:
            return Ok()
        route = await self.route(work.node_id, f"container {cid} is on node {work.node_id}",
                                 {"id": cid})
        # NotFound: its node has not made the container or that endpoint: the resent Assign
        # leaves the network once it is made, if the copy was made on it.
        with contextlib.suppress(NotFound):
            await self.forwarder.ask(route, lambda reply: replace(message, name=name,
                                                                  reply=reply))
        return Ok()
