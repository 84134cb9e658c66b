"""A node takes at most its limit of containers (cluster default or its own label)."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class MaxContainersFilter:
    name: str = "max-containers"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return True

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        limit = node.max_containers
        if limit is not None and len(node.containers) + req.count > limit:
            return Rejection(self.name, f"container limit reached ({limit} per node)")
        return None
