"""Spread (the default): the least loaded node by Swarm classic's weight wins.

Swarm classic sorts nodes of exactly equal weight by their number of containers (fewest
first), so containers that reserve nothing still spread (``ClassicSpreadScorer``). shoal's
weight adds the count as a small term instead, so it also decides between weights closer than
``COUNT_WEIGHT`` per container of difference (bench/placement.py measures what that changes).
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

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> float:
        return swarm_weight(req, node) + COUNT_WEIGHT * len(node.containers)


@dataclass(frozen=True, slots=True)
class ClassicSpreadScorer:
    """Swarm classic exactly: the weight, then the container count on an exact tie."""

    name: str = "spread"
    ordered: bool = True

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> tuple[float, int]:
        return swarm_weight(req, node), len(node.containers)
