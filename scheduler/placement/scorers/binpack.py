"""Binpack: the most loaded node that still fits wins, so whole nodes stay free."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.request import PlacementRequest
from scheduler.placement.scorers import swarm_weight
from scheduler.placement.snapshot import NodeSnapshot

COUNT_WEIGHT = 1e-4


@dataclass(frozen=True, slots=True)
class BinpackScorer:
    name: str = "binpack"
    ordered: bool = True

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> float:
        return -(swarm_weight(req, node) + COUNT_WEIGHT * len(node.containers))
