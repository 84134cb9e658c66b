"""Hard anti-affinities of containers already on a node bar newcomers that match them.

If ``db-1`` runs with ``container!=web*``, a later ``web-3`` may not join it: the rule holds in
the final state, not only when ``db-1`` was placed, so the checker can verify it from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest, container_matches
from scheduler.placement.snapshot import NodeSnapshot


@dataclass(frozen=True, slots=True)
class GuardFilter:
    name: str = "anti-affinity of running containers"
    static: bool = False
    identity: bool = True

    def relevant(self, req: PlacementRequest) -> bool:
        return True  # depends on the node, checked only where a node has guards

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        for holder in node.guards:
            for rule in holder.request.guards:
                for who in cycle.identities:
                    if container_matches(rule, who.name, who.id, who.request):
                        label = holder.name or holder.id
                        return Rejection(self.name, f"{label} has anti-affinity {rule.text}")
        return None
