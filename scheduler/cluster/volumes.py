"""The cluster's named volumes: ``volume create|ls|inspect|rm|prune`` on a scheduler. Each
volume lives on one node, which lists its volumes in its node record (``nodes/<id>`` in etcd,
``info.volumes``: at each join and whenever they change); reads come from there, with the
users counted from the containers records, and changes are asked of the node's worker, whose
next report updates the record.

Names are per node: two nodes may each hold a ``data``. A request that names a volume held by
several nodes must say which (``--node``); ``create`` must say where unless the cluster has one
ready node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from protocol.errors import Conflict, InvalidArgument, NotFound, Unsupported
from protocol.messages import (
    CreateVolume,
    InspectVolume,
    ListVolumes,
    Message,
    Ok,
    PruneVolumes,
    RemoveVolume,
    VolumeInspected,
    VolumeList,
    VolumesPruned,
)
from protocol.specs import VolumeInfo
from scheduler.cluster.forward import Forwarder, Route
from scheduler.store import CONTAINERS, NODES, Store

NodeRoute = Callable[..., Awaitable[Route]]


class ClusterVolumes:
    def __init__(self, store: Store, route: NodeRoute, forwarder: Forwarder) -> None:
        self.store = store
        self.route = route  # where a node serves its verbs, or Unavailable
        self.forwarder = forwarder

    async def handle(self, message: Message) -> Message:
        match message:
            case CreateVolume(spec=spec, node_id=node_id):
                node_id = node_id or await self._only_node()
                route = await self.route(node_id, f"node {node_id}")
                answer = await self.forwarder.ask(
                    route, lambda r: CreateVolume(spec=spec, reply=r))
                return answer
            case ListVolumes():
                return VolumeList(volumes=await self._every())
            case InspectVolume(name=name, node_id=node_id):
                return VolumeInspected(info=await self._one(name, node_id))
            case RemoveVolume(name=name, node_id=node_id, force=force):
                await self._remove(name, node_id, force)
                return Ok()
            case PruneVolumes(all=every):
                return await self._prune(every)
        raise Unsupported(f"not a volume verb: {type(message).__name__}")

    async def _users(self) -> dict[tuple[str, str], list[str]]:
        """(node, volume) → the containers there that name it (not removed)."""
        users: dict[tuple[str, str], list[str]] = {}
        async for record in self.store.list(CONTAINERS, page_size=5000):
            value = record.value
            if not value.node_id or value.desired == "removed" \
                    or value.schedule_state == "removed":
                continue
            for mount in value.spec.mounts:
                if mount.type == "volume":
                    users.setdefault((value.node_id, mount.source), []).append(record.id)
        return users

    async def _every(self) -> list[VolumeInfo]:
        users = await self._users()
        found = []
        async for record in self.store.list(NODES):
            node_id = record.value.info.id
            for info in record.value.info.volumes:
                found.append(msgspec.structs.replace(
                    info, node_id=node_id,
                    users=sorted(users.get((node_id, info.spec.name), []))))
        return sorted(found, key=lambda v: (v.spec.name, v.node_id))

    async def _one(self, name: str, node_id: str) -> VolumeInfo:
        matches = [v for v in await self._every()
                   if v.spec.name == name and (not node_id or v.node_id == node_id)]
        if not matches:
            where = f" on node {node_id}" if node_id else ""
            raise NotFound(f"no such volume: {name}{where}", details={"volume": name})
        if len(matches) > 1:
            nodes = ", ".join(v.node_id for v in matches)
            raise Conflict(f"volume {name} is on {len(matches)} nodes ({nodes}): give --node",
                           details={"volume": name})
        return matches[0]

    async def _remove(self, name: str, node_id: str, force: bool) -> None:
        try:
            info = await self._one(name, node_id)
        except NotFound:
            if force:
                return
            raise
        if info.users:
            raise Conflict(f"volume {name} on {info.node_id} is in use by "
                           f"{len(info.users)} container{'s' if len(info.users) > 1 else ''}"
                           f": {', '.join(info.users[:5])}"
                           + (f" and {len(info.users) - 5} more" if len(info.users) > 5
                              else ""), details={"volume": name, "node_id": info.node_id})
        route = await self.route(info.node_id, f"volume {name} is on node {info.node_id}")
        await self.forwarder.ask(route, lambda r: RemoveVolume(name=name, force=force,
                                                               reply=r))

    async def _prune(self, every: bool) -> VolumesPruned:
        """Every ready node's unused volumes, each named NODE/NAME."""
        names: list[str] = []
        reclaimed = 0
        async for record in self.store.list(NODES):
            info = record.value.info
            if info.status != "ready" or not info.volumes:
                continue
            route = await self.route(info.id, f"node {info.id}")
            answer = await self.forwarder.ask(route, lambda r: PruneVolumes(all=every,
                                                                             reply=r))
            if isinstance(answer, VolumesPruned):
                names += [f"{info.id}/{name}" for name in answer.names]
                reclaimed += answer.reclaimed
        return VolumesPruned(names=names, reclaimed=reclaimed)

    async def _only_node(self) -> str:
        ready = [r.value.info.id async for r in self.store.list(NODES)
                 if r.value.info.status == "ready"]
        if len(ready) == 1:
            return ready[0]
        raise InvalidArgument(f"a volume lives on one node: give --node (the cluster has "
                              f"{len(ready)} ready nodes: {', '.join(sorted(ready)[:5])})")
