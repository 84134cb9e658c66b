"""The leader's part in overlay networks: an address on each overlay a container it places is
on (taken in etcd before the plan is committed, carried in the Assign), an address given back
when the container stops holding its node (removed, rescheduled from a lost node, or its plan
not committed) or leaves the network (disconnected), and each node told the endpoints of its
overlay networks. A running container connected to an overlay gets its address here too
(``connect``), before the record that holds it is committed.

Addresses are taken before the commit, so a leader that dies between the two leaves a claim no
record holds: the next leader gives those back when it loads (``load``).
"""

from __future__ import annotations

import msgspec
import structlog

from protocol.errors import ShoalError
from protocol.messages import Assign, NetworkEndpoints
from protocol.specs import NetworkSpec
from scheduler.cluster.cycle import LeaderCycle, occupies_node
from scheduler.cluster.overlay_endpoints import (
    OverlayDirectory,
    assignment,
    endpoints_of,
    overlays_of,
)
from scheduler.cluster.overlay_ipam import OverlayAddresses
from scheduler.cluster.tx import Entry
from scheduler.store import ContainerRecord, NodeRecord, Store
from scheduler.store.plan import Fence

log = structlog.get_logger("shoal.scheduler.overlay")

Change = tuple[str, ContainerRecord | None, ContainerRecord | None]  # id, before, after


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
            self.directory.put(cid, endpoints_of(cid, record,
                                                 self._node(nodes, record.node_id)),
                               record.node_id)
        self.directory.take_changed()
        holders = await self.addresses.load()
        for key, cid in holders.items():
            network, _, ip = key.rpartition(":")
            holder = containers.get(cid)
            if holder is None or holder.record.addresses.get(network) != ip:
                log.info("giving back an overlay address no container holds", network=network,
                         ip=ip, container_id=cid)
                await self.addresses.release(network, ip, cid)

    async def allocate(self, cycle: LeaderCycle, placed: list[str]
                       ) -> dict[str, dict[str, str]]:
        """An address on each overlay network of each container placed this cycle: into its
        staged record and its Assign. One that gets none stays pending, saying why (the
        addresses it got are given back by ``settle``). Returns ``container id → the
        addresses taken, by network``."""
        taken: dict[str, dict[str, str]] = {}
        assigns = {out.message.container_id: out for out in cycle.outgoing
                   if isinstance(out.message, Assign) and out.key is not None}
        for cid in placed:
            record = cycle.containers.get(cid)
            # Placements an all-or-nothing submission undid hold no node: no address either.
            if record is None or not occupies_node(record):
                continue
            wanted = [o for o in overlays_of(record.spec)
                      if o.spec.name not in record.addresses]
            if not wanted:
                continue
            got = dict(record.addresses)
            for overlay in wanted:
                try:
                    ip = await self.addresses.allocate(overlay.spec, cid, overlay.wanted_ip)
                except ShoalError as exc:
                    log.warning("no overlay address; the container stays pending",
                                container_id=cid, network=overlay.spec.name, error=str(exc))
                    cycle.put_container(cid, msgspec.structs.replace(
                        record, schedule_state="pending", node_id="",
                        placement=f"no address on {overlay.spec.name}: {exc}"[:4096]))
                    cycle.outgoing = [o for o in cycle.outgoing if o is not assigns.get(cid)]
                    break
                got[overlay.spec.name] = ip
                taken.setdefault(cid, {})[overlay.spec.name] = ip
            else:
                record = msgspec.structs.replace(record, addresses=got)
                cycle.put_container(cid, record)
                out = assigns.get(cid)
                if out is not None and isinstance(out.message, Assign):
                    out.message = msgspec.structs.replace(
                        out.message, spec=assignment(cid, record).spec)
        return taken

    async def connect(self, network: NetworkSpec, cid: str, wanted: str) -> str:
        """An address on ``network`` for a running container being connected to it, taken
        in etcd; the caller commits the record that holds it or gives it back
        (``release``)."""
        return await self.addresses.allocate(network, cid, wanted)

    async def release(self, network: str, ip: str, cid: str) -> None:
        try:
            await self.addresses.release(network, ip, cid)
        except ShoalError as exc:  # the next leader's load gives it back
            log.warning("giving back an overlay address failed", network=network, ip=ip,
                        container_id=cid, error=str(exc))

    async def settle(self, cycle: LeaderCycle, changes: list[Change],
                     taken: dict[str, dict[str, str]],
                     nodes: dict[str, Entry[NodeRecord]]) -> None:
        """After the commit: addresses the committed records let go of, and those taken for
        records that were not committed, given back; the directory follows the records."""
        gone: list[tuple[str, str, str]] = []
        for cid, before, after in changes:
            if before is not None:
                kept = after.addresses if after is not None else {}
                gone += [(network, ip, cid) for network, ip in before.addresses.items()
                         if kept.get(network) != ip]
            node_id = after.node_id if after is not None else ""
            self.directory.put(cid, endpoints_of(cid, after, self._node(nodes, node_id)),
                               node_id)
        for cid, ips in taken.items():
            record = cycle.containers.get(cid)
            committed = record is not None and cycle.ok(("containers", cid))
            gone += [(network, ip, cid) for network, ip in ips.items()
                     if not committed or record is None
                     or record.addresses.get(network) != ip]
        for network, ip, cid in gone:
            await self.release(network, ip, cid)

    def notices(self) -> dict[str, NetworkEndpoints]:
        """For each node whose list changed: its whole list."""
        return {node_id: self.snapshot(node_id) for node_id in self.directory.take_changed()}

    def snapshot(self, node_id: str) -> NetworkEndpoints:
        return NetworkEndpoints(endpoints=self.directory.snapshot(node_id))
