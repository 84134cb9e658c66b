"""Random: any feasible node, uniformly, from the engine's seeded RNG."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class RandomScorer:
    name: str = "random"
    ordered: bool = False

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> float:
        return 0.0  # unordered: the engine draws among feasible nodes instead
