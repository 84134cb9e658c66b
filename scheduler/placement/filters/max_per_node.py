"""A job puts at most ``max_per_node`` of its containers on one node (Compose's
``deploy.placement.max_replicas_per_node``)."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection, Rejections
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot

_REFUSED = Rejections()  # per request


@dataclass(frozen=True, slots=True)
class MaxPerNodeFilter:
    name: str = "max-per-node"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return req.max_per_node > 0

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        if req.max_per_node and node.jobs.get(req.job, 0) + req.count > req.max_per_node:
            return _REFUSED.get(req, lambda: Rejection(
                self.name, f"job {req.job} has its {req.max_per_node} per node here already"))
        return None
