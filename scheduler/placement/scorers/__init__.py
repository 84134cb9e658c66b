"""Placement strategies: rank the nodes that passed every filter.

A scorer gives a key per (request, node), lower is better; it reads the node's allocation
*after* the request would be added, as Swarm classic did. An unordered scorer (random) leaves
the choice to the engine's seeded RNG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias

from scheduler.placement.native import compiled_path

if TYPE_CHECKING:
    from scheduler.placement.request import PlacementRequest
    from scheduler.placement.snapshot import NodeSnapshot

# The compiled engine's directory first on this package's path when it may be used
# (scheduler/placement/native.py); else this directory alone.
__path__ = compiled_path(__name__, __path__)


# A float, or for Swarm classic's weighting (weight, container count): classic sorts nodes of
# exactly equal weight by their number of containers, as a second key, not a weighted term.
Score: TypeAlias = "float | tuple[float, int]"


def swarm_weight(req: PlacementRequest, node: NodeSnapshot) -> float:
    """Swarm classic's weight: cpu% + mem% of (used + requested) over capacity, 0..200."""
    cpu = (node.used_cpu + req.millicpus) * 100.0 / node.cap_cpu if node.cap_cpu else 0.0
    mem = (node.used_mem + req.memory) * 100.0 / node.cap_mem if node.cap_mem else 0.0
    return cpu + mem


class Scorer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ordered(self) -> bool: ...

    def key(self, req: PlacementRequest, node: NodeSnapshot) -> Score: ...
