"""Placement preferences: spread a job's containers evenly over the values of node labels.

SwarmKit's ``--placement-pref spread=node.labels.zone`` (or ``engine.labels.zone``, a label
the worker declared at start): the nodes form a tree, one level per
preference, a branch per label value (nodes without the label form a branch of their own). A
container goes to the branch holding the fewest of its job's containers (counted on every node
of the branch, as SwarmKit counts them), level by level, among branches with a node that can
take it; the strategy then chooses among the nodes left. Branches tied at one level are all
kept, and their sub-branches compared together at the next; the strategy breaks what remains.

SwarmKit splits a batch into per-branch quotas up front; choosing one container at a time by
the fewest containers reaches the same even counts and lets the engine keep its heaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from scheduler.placement.filters.constraints import attribute
from scheduler.placement.request import PlacementRequest
from scheduler.placement.snapshot import NodeSnapshot

# One label value per preference; None where the node lacks the label.
Path = tuple[str | None, ...]


def spread_path(req: PlacementRequest, node: NodeSnapshot) -> Path:
    """Where the node sits in the request's tree."""
    return tuple(attribute(key)(node) for key in req.spread)


def branch_counts(req: PlacementRequest, nodes: Iterable[NodeSnapshot]) -> dict[Path, int]:
    """The job's containers under every branch (every prefix of a path), over all nodes."""
    counts: dict[Path, int] = {}
    job = req.job
    for node in nodes:
        held = node.jobs.get(job, 0)
        if held:
            add_to_branches(counts, spread_path(req, node), held)
    return counts


def add_to_branches(counts: dict[Path, int], path: Path, n: int) -> None:
    """Count ``n`` more containers on a node at ``path``, in each branch above it."""
    for level in range(1, len(path) + 1):
        prefix = path[:level]
        counts[prefix] = counts.get(prefix, 0) + n


def least_filled(paths: Iterable[Path], counts: dict[Path, int]) -> set[Path]:
    """Of the paths of nodes that can take the container, those in the emptiest branches."""
    keep = set(paths)
    depth = len(next(iter(keep))) if keep else 0
    for level in range(1, depth + 1):
        fewest = min(counts.get(p[:level], 0) for p in keep)
        keep = {p for p in keep if counts.get(p[:level], 0) == fewest}
    return keep


def preferred(req: PlacementRequest, fits: Sequence[NodeSnapshot],
              nodes: Iterable[NodeSnapshot]) -> list[NodeSnapshot]:
    """The nodes of ``fits`` (all able to take the container) in the branches it should go to.

    A full pass over ``nodes`` per call: for the naive scheduler, apps and sampling; the
    engine's heap path keeps the counts itself."""
    if not req.spread or not fits:
        return list(fits)
    paths = {n.index: spread_path(req, n) for n in fits}
    keep = least_filled(paths.values(), branch_counts(req, nodes))
    return [n for n in fits if paths[n.index] in keep]
