"""Spread (the default): the least loaded node by Swarm classic's weight wins.

Beyond the baseline, the container count breaks near-ties: containers that reserve nothing do
not move the weight, and without it they would all pile onto one node.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.request import PlacementRequest
from scheduler.placement.scorers import swarm_weight
from scheduler.placement.snapshot import NodeSnapshot

COUNT_WEIGHT = 1e-4  # below any weight step a real reservation makes on a node


@dataclass(frozen=True, slots=True)
class SpreadScorer:
    name: str = "spread"
    ordered: bool = True
    count_weight: float = COUNT_WEIGHT  # 0.0 gives Swarm classic's weight exactly

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> float:
        return swarm_weight(req, node) + self.count_weight * len(node.containers)
