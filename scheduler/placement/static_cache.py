"""Static feasibility, computed once per class of alike nodes and cached across requests.

Nodes with the same platform, labels and readiness pass or fail a request's static filters
together (Nomad's computed node classes), so a 5,000-node cluster with 200 distinct node shapes
costs 200 checks per distinct rule set, not 5,000 per container. Rules on ``node.id`` or
``node.hostname`` name single nodes, so requests with them are checked node by node.
"""

from __future__ import annotations

from scheduler.placement.filters import Filter, PlacementCycle
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import ClusterSnapshot, NodeSnapshot

_PER_NODE_KEYS = frozenset({"node", "node.id", "node.hostname", "node.ip"})


def static_signature(req: PlacementRequest) -> tuple[object, ...]:
    """What the static filters read of a request: equal signatures, equal verdicts."""
    return (req.platforms, tuple((r.text, r.soft) for r in req.constraints))


class StaticCandidates:
    """Nodes that pass the static filters, per request signature. Valid while nodes are fixed."""

    def __init__(self, cluster: ClusterSnapshot, filters: tuple[Filter, ...]) -> None:
        self._cluster = cluster
        self._filters = filters
        self._classes: dict[tuple[object, ...], list[NodeSnapshot]] = {}
        for node in cluster.nodes:
            self._classes.setdefault(node.static_key, []).append(node)
        self._cache: dict[tuple[object, ...], list[NodeSnapshot]] = {}

    @property
    def node_classes(self) -> int:
        return len(self._classes)

    def _passes(self, req: PlacementRequest, node: NodeSnapshot, cycle: PlacementCycle) -> bool:
        return all(f.check(req, node, cycle) is None for f in self._filters if f.relevant(req))

    def get(self, req: PlacementRequest, cycle: PlacementCycle) -> list[NodeSnapshot]:
        """The statically feasible nodes, in cluster order (callers must not mutate the list)."""
        sig = static_signature(req)
        hit = self._cache.get(sig)
        if hit is not None:
            return hit
        per_node = any(r.key in _PER_NODE_KEYS for r in req.constraints)
        out: list[NodeSnapshot] = []
        for members in self._classes.values():
            if per_node:
                out.extend(n for n in members if self._passes(req, n, cycle))
            elif self._passes(req, members[0], cycle):
                out.extend(members)
        out.sort(key=lambda n: n.index)
        if len(self._cache) > 4096:  # bounded: rule sets are user input
            self._cache.clear()
        self._cache[sig] = out
        return out
