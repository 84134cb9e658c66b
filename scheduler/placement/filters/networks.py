"""A container on a bridge or overlay network needs a node whose driver gives it a network
namespace: a process-driver node (a Windows worker) runs everything on the host's network only,
so it would refuse the container after placement. ``--network none``, ``host`` and the default
(the host's network there) fit anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot

HOST_NETWORK_ONLY = "process"  # the node runtime that has the host's network only


@dataclass(frozen=True, slots=True)
class NetworkFilter:
    name: str = "network"
    static: bool = True  # the node's runtime is fixed for its join
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.networks)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        if req.networks and node.runtime == HOST_NETWORK_ONLY:
            return Rejection(self.name, "have only the host network (process driver), not "
                             f"{', '.join(req.networks)}")
        return None
