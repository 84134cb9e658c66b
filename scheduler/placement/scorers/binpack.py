"""Binpack: the most loaded node that still fits wins, so whole nodes stay free."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.request import PlacementRequest
from scheduler.placement.scorers import swarm_weight
from scheduler.placement.snapshot import NodeSnapshot

COUNT_WEIGHT = 1e-4  # prefer the node with more containers when the weights tie


@dataclass(frozen=True, slots=True)
class BinpackScorer:
    name: str = "binpack"
    ordered: bool = True
    count_weight: float = COUNT_WEIGHT  # 0.0 gives Swarm classic's weight exactly

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> float:
        return -(swarm_weight(req, node) + self.count_weight * len(node.containers))
