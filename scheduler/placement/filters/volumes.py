"""A container that names a volume some node holds goes to a node that holds it: a named
volume of the local driver lives on one node (a volume no node holds yet is made where the
container lands)."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot

MAX_NAMED = 3  # holders named in a reason; more are counted


@dataclass(frozen=True, slots=True)
class VolumeFilter:
    name: str = "volume"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.volumes)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        for volume in req.volumes:
            if volume in node.volumes:
                continue
            holders = cycle.cluster.volume_nodes.get(volume)
            if holders:
                shown = ", ".join(holders[:MAX_NAMED])
                if len(holders) > MAX_NAMED:
                    shown += f" and {len(holders) - MAX_NAMED} more"
                return Rejection(self.name, f"volume {volume} is on {shown}")
        return None
