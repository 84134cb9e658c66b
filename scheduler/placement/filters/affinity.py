"""Affinity and anti-affinity to the containers on a node: by name or id, image, label.

``container==db`` wants a node that runs a container named (or with id) db; ``image!=redis``
wants one that runs no redis container; ``label.tier==web`` looks at container labels.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.request import PlacementRequest
from scheduler.placement.rules import CONTAINER_LABEL_PREFIX
from scheduler.placement.snapshot import NodeSnapshot

_EMPTY: dict[str, int] = {}


def node_values(node: NodeSnapshot, key: str) -> Set[str]:
    """What an affinity key can match on a node: container names/ids, images or label values."""
    if key == "container":
        return node.names.keys()
    if key == "image":
        return node.images.keys()
    return node.label_values.get(key[len(CONTAINER_LABEL_PREFIX):], _EMPTY).keys()


@dataclass(frozen=True, slots=True)
class AffinityFilter:
    name: str = "affinity"
    static: bool = False
    identity: bool = False

    def relevant(self, req: PlacementRequest) -> bool:
        return bool(req.affinities)

    def check(self, req: PlacementRequest, node: NodeSnapshot,
              cycle: PlacementCycle) -> Rejection | None:
        for rule in req.affinities:
            if not rule.holds_any(node_values(node, rule.key)):
                soft = " (soft)" if rule.soft else ""
                kind = "anti-affinity" if rule.negate else "affinity"
                return Rejection(self.name, f"{kind} {rule.text.lstrip('~')}{soft}")
        return None
