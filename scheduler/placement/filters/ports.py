"""No two containers on a node publish the same host port with the same protocol."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class PortFilter:
    name: str = "ports"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.ports)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        used = node.ports
        for pair in req.ports:
            if pair in used:
                return Rejection(self.name, f"host port {pair[0]}/{pair[1]} in use")
        return None
