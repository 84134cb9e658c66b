"""Only ready nodes whose availability is active take new containers (pause and drain do not)."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class AvailabilityFilter:
    name: str = "availability"
    static: bool = True
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return True

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        if node.ready:
            return None
        if node.status != "ready":
            return Rejection(self.name, f"node {node.status}")
        state = "draining" if node.availability == "drain" else "paused"
        return Rejection(self.name, f"node {state}")
