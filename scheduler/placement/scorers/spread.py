"""Spread (the default): the least loaded node by Swarm classic's weight wins.

Swarm classic sorts nodes of exactly equal weight by their number of containers (fewest
first), so containers that reserve nothing still spread (``ClassicSpreadScorer``). shoal's
weight adds the count as a small term instead, so it also decides between weights closer than
``COUNT_WEIGHT`` per container of difference (bench/placement.py measures what that changes).
"""

from __future__ import annotations

from collections.abc import Iterable
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
        # swarm_weight, inlined: this runs for every node met and every placement.
        cap = node.cap_cpu
        cpu = (node.used_cpu + req.millicpus) * 100.0 / cap if cap else 0.0
        cap = node.cap_mem
        mem = (node.used_mem + req.memory) * 100.0 / cap if cap else 0.0
        return cpu + mem + COUNT_WEIGHT * len(node.containers)

    # ``key`` split in two, equal to it but for float rounding: the node's own term and the
    # request's share of a node of that capacity (load_order.py walks nodes by the first).
    def own_terms(self, nodes: Iterable[NodeSnapshot]) -> list[float]:
        """Each node's own term, in one comprehension (a load order's refresh)."""
        w = COUNT_WEIGHT
        # A node without containers reserves nothing: its term is 0.0 exactly (0 * x / c).
        return [(n.used_cpu * 100.0 / n.cap_cpu if n.cap_cpu else 0.0)
                + (n.used_mem * 100.0 / n.cap_mem if n.cap_mem else 0.0)
                + w * len(n.containers) if n.containers else 0.0 for n in nodes]

    def request_term(self, req: PlacementRequest, cap_cpu: int, cap_mem: int) -> float:
        cpu = req.millicpus * 100.0 / cap_cpu if cap_cpu else 0.0
        mem = req.memory * 100.0 / cap_mem if cap_mem else 0.0
        return cpu + mem


@dataclass(frozen=True, slots=True)
class ClassicSpreadScorer:
    """Swarm classic exactly: the weight, then the container count on an exact tie."""

    name: str = "spread"
    ordered: bool = True

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> tuple[float, int]:
        return swarm_weight(req, node), len(node.containers)
