"""Binpack: the most loaded node that still fits wins, so whole nodes stay free.

On an exact tie of weights Swarm classic takes the node with more containers (its spread order
reversed); ``BinpackScorer`` adds the count as a small term, ``ClassicBinpackScorer`` as a
second key, as classic does.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.request import PlacementRequest
from scheduler.placement.scorers import swarm_weight
from scheduler.placement.snapshot import NodeSnapshot

COUNT_WEIGHT = 1e-4  # prefer the node with more containers when the weights (nearly) tie


@dataclass(frozen=True, slots=True)
class BinpackScorer:
    name: str = "binpack"
    ordered: bool = True

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> float:
        return -(swarm_weight(req, node) + COUNT_WEIGHT * len(node.containers))


@dataclass(frozen=True, slots=True)
class ClassicBinpackScorer:
    """Swarm classic exactly: the highest weight, then the most containers on an exact tie."""

    name: str = "binpack"
    ordered: bool = True

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> tuple[float, int]:
        return -swarm_weight(req, node), -len(node.containers)
