"""``system.df`` for a whole cluster: the images of the cluster's store (what ``image.list``
shows on a scheduler), and every ready node's containers, volumes and build cache, asked of the
nodes at once, each row carrying its node. A node that does not answer within ``NODE_TIMEOUT``
is left out, and logged: the report is of the nodes that answered."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from protocol.errors import ShoalError
from protocol.messages import DiskUsage, GetDiskUsage
from scheduler.cluster.forward import Forwarder, Route
from scheduler.cluster.images import ClusterImages
from scheduler.store import NODES, Store

log = structlog.get_logger("shoal.scheduler")

NODE_TIMEOUT = 30.0
NodeRoute = Callable[[str, str], Awaitable[Route]]


async def cluster_disk_usage(store: Store, images: ClusterImages | None,
                             forwarder: Forwarder, node_route: NodeRoute) -> DiskUsage:
    nodes = [record.id async for record in store.list(NODES)
             if record.value.info.status == "ready"]
    answers = await asyncio.gather(*(_node_usage(forwarder, node_route, n) for n in nodes))
    containers, volumes, cache = [], [], []
    for node_id, usage in zip(nodes, answers, strict=True):
        if usage is None:
            continue
        containers += [msgspec.structs.replace(c, node_id=node_id) for c in usage.containers]
        volumes += [msgspec.structs.replace(v, node_id=node_id) for v in usage.volumes]
        cache += usage.build_cache
    users = collections.Counter(c.image_id for c in containers if c.image_id)
    if images is None:
        return DiskUsage(containers=containers, volumes=volumes, build_cache=cache)
    image_rows, own_cache, layers = await images.usage(users)
    return DiskUsage(layers_size=layers, images=image_rows, containers=containers,
                     volumes=volumes, build_cache=[*own_cache, *cache])


async def _node_usage(forwarder: Forwarder, node_route: NodeRoute,
                      node_id: str) -> DiskUsage | None:
    try:
        route = await node_route(node_id, f"node {node_id}")
        answer = await forwarder.ask(route, lambda r: GetDiskUsage(reply=r),
                                     timeout=NODE_TIMEOUT)
    except ShoalError as exc:
        log.warning("a node's disk usage is left out of system df", node_id=node_id,
                    error=str(exc))
        return None
    return answer if isinstance(answer, DiskUsage) else None
