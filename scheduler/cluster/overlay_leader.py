"""The leader's part in overlay networks: an address for each container it places on one
(taken in etcd before the plan is committed, carried in the Assign), the address given back
when the container stops holding its node (removed, rescheduled from a lost node, or its plan
not committed), and each node told the endpoints of its overlay networks.

Addresses are taken before the commit, so a leader that dies between the two leaves a claim no
record holds: the next leader gives those back when it loads (``load``).
"""

from __future__ import annotations

import msgspec
import structlog

from protocol.errors import ShoalError
from protocol.messages import Assign, NetworkEndpoints
from scheduler.cluster.cycle import LeaderCycle, occupies_node
from scheduler.cluster.overlay_endpoints import OverlayDirectory, endpoint_of
from scheduler.cluster.overlay_ipam import OverlayAddresses
from scheduler.cluster.tx import Entry
from scheduler.store import ContainerRecord, NodeRecord, Store
from scheduler.store.plan import Fence

log = structlog.get_logger("shoal.scheduler.overlay")

Change = tuple[str, ContainerRecord | None, ContainerRecord | None]  # id, before, after


def _overlay(record: ContainerRecord) -> bool:
    network = record.spec.network_spec
    return network is not None and network.driver == "overlay" and bool(network.subnet)


class LeaderOverlay:
    def __init__(self, store: Store, fence: Fence | None) -> None:
        self.addresses = OverlayAddresses(store, fence)
        self.directory = OverlayDirectory()

    def _node(self, nodes: dict[str, Entry[NodeRecord]], node_id: str) -> NodeRecord | None:
        entry = nodes.get(node_id)
        return entry.record if entry is not None else None

    async def load(self, containers: dict[str, Entry[ContainerRecord]],
                   nodes: dict[str, Entry[NodeRecord]]) -> None:
        """The endpoints as committed; claims no record holds (a dead leader's allocation
        whose plan never committed) given back."""
        for cid, entry in containers.items():
            record = entry.record
            self.directory.put(cid, endpoint_of(cid, record, self._node(nodes, record.node_id)),
                               record.node_id)
        self.directory.take_changed()
        holders = await self.addresses.load()
        for key, cid in holders.items():
            network, _, ip = key.rpartition(":")
            holder = containers.get(cid)
            held = holder is not None and holder.record.address == ip and (
                holder.record.spec.network == network)
            if not held:
                log.info("giving back an overlay address no container holds", network=network,
                         ip=ip, container_id=cid)
                await self.addresses.release(network, ip, cid)

    async def allocate(self, cycle: LeaderCycle, placed: list[str]) -> dict[str, str]:
        """An address for each container placed on an overlay network this cycle: into its
        staged record and its Assign. One that gets none stays pending, saying why. Returns
        ``container id → address`` taken."""
        taken: dict[str, str] = {}
        assigns = {out.message.container_id: out for out in cycle.outgoing
                   if isinstance(out.message, Assign) and out.key is not None}
        for cid in placed:
            record = cycle.containers.get(cid)
            # Placements an all-or-nothing submission undid hold no node: no address either.
            if record is None or not _overlay(record) or record.address or \
                    not occupies_node(record):
                continue
            network = record.spec.network_spec
            assert network is not None
            try:
                ip = await self.addresses.allocate(network, cid, record.spec.ip)
            except ShoalError as exc:
                log.warning("no overlay address; the container stays pending", container_id=cid,
                            network=network.name, error=str(exc))
                cycle.put_container(cid, msgspec.structs.replace(
                    record, schedule_state="pending", node_id="",
                    placement=f"no address on {network.name}: {exc}"[:4096]))
                cycle.outgoing = [o for o in cycle.outgoing if o is not assigns.get(cid)]
                continue
            taken[cid] = ip
            cycle.put_container(cid, msgspec.structs.replace(record, address=ip))
            out = assigns.get(cid)
            if out is not None and isinstance(out.message, Assign):
                out.message = msgspec.structs.replace(
                    out.message, spec=msgspec.structs.replace(out.message.spec, ip=ip))
        return taken

    async def settle(self, cycle: LeaderCycle, changes: list[Change], taken: dict[str, str],
                     nodes: dict[str, Entry[NodeRecord]]) -> None:
        """After the commit: addresses the committed records let go of, and those taken for
        records that were not committed, given back; the directory follows the records."""
        gone: list[tuple[str, str, str]] = []
        for cid, before, after in changes:
            if before is not None and before.address and (
                    after is None or after.address != before.address):
                gone.append((before.spec.network, before.address, cid))
            node_id = after.node_id if after is not None else ""
            self.directory.put(cid, endpoint_of(cid, after, self._node(nodes, node_id)),
                               node_id)
        for cid, ip in taken.items():
            record = cycle.containers.get(cid)
            if record is not None and (not cycle.ok(("containers", cid))
                                       or record.address != ip):
                gone.append((record.spec.network, ip, cid))
        for network, ip, cid in gone:
            try:
                await self.addresses.release(network, ip, cid)
            except ShoalError as exc:  # the next leader's load gives it back
                log.warning("giving back an overlay address failed", network=network, ip=ip,
                            container_id=cid, error=str(exc))

    def notices(self) -> dict[str, NetworkEndpoints]:
        """For each node whose list changed: its whole list."""
        return {node_id: self.snapshot(node_id) for node_id in self.directory.take_changed()}

    def snapshot(self, node_id: str) -> NetworkEndpoints:
        return NetworkEndpoints(endpoints=self.directory.snapshot(node_id))
