"""Heap entries for the commonest request, fused: the resource check and the spread score in
one expression, with no call per node.

Under shoal's spread weighting every request is judged by the resource filter, and for a
request that has no other dynamic filter (no ports, affinities, links, volumes, per-node cap,
and no node with a container limit: most of every large workload) building entries was most
of a job's cost, three calls per candidate (the check, the score, the image tie-break). Here
they are one comprehension over the candidates (``entries``) or one closure per node met
(``entry_maker``); a request's other filters run first, as calls.

Both must say exactly what ``ResourceFilter.check`` and ``SpreadScorer.key`` say, to the last
bit of the float: the expressions below are theirs, in the same order, and
tests/scheduler/placement/test_placement_spread_entries.py holds them to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from scheduler.placement.filters import PlacementCycle, Rejection
from scheduler.placement.load_order import HeapEntry
from scheduler.placement.request import PlacementRequest
from scheduler.placement.scorers.spread import COUNT_WEIGHT
from scheduler.placement.snapshot import NodeSnapshot

Check = Callable[[PlacementRequest, NodeSnapshot, PlacementCycle], Rejection | None]


def entries(req: PlacementRequest, nodes: Iterable[NodeSnapshot], rank: Sequence[int],
            cycle: PlacementCycle, others: Sequence[Check] = ()) -> list[HeapEntry]:
    """The heap entry of every node that can take ``req`` now, in the order given; ``others``
    are the checks of the request's filters other than the resource filter."""
    for check in others:  # one pass per check: no generator per node
        nodes = [n for n in nodes if check(req, n, cycle) is None]
    mc, mem, pids, image, w = req.millicpus, req.memory, req.pids, req.image, COUNT_WEIGHT
    return [
        (((n.used_cpu + mc) * 100.0 / n.cap_cpu if n.cap_cpu else 0.0)
         + ((n.used_mem + mem) * 100.0 / n.cap_mem if n.cap_mem else 0.0)
         + w * len(n.containers),
         0 if image in n.stored_images else 1, rank[n.index], n.index, n.version)
        for n in nodes
        if mem <= n.cap_mem - n.used_mem and mc <= n.cap_cpu - n.used_cpu
        and (not n.cap_pids or pids <= n.cap_pids - n.used_pids)
    ]


def entry_maker(req: PlacementRequest, rank: Sequence[int], cycle: PlacementCycle,
                others: Sequence[Check] = ()) -> Callable[[NodeSnapshot], HeapEntry | None]:
    """One node's entry, or None when it cannot take ``req`` now (``entries`` for one node)."""
    mc, mem, pids, image, w = req.millicpus, req.memory, req.pids, req.image, COUNT_WEIGHT

    def entry(n: NodeSnapshot) -> HeapEntry | None:
        if others:
            for check in others:
                if check(req, n, cycle) is not None:
                    return None
        if mem > n.cap_mem - n.used_mem or mc > n.cap_cpu - n.used_cpu or (
                n.cap_pids and pids > n.cap_pids - n.used_pids):
            return None
        cap = n.cap_cpu
        cpu = (n.used_cpu + mc) * 100.0 / cap if cap else 0.0
        cap = n.cap_mem
        return (cpu + ((n.used_mem + mem) * 100.0 / cap if cap else 0.0)
                + w * len(n.containers),
                0 if image in n.stored_images else 1, rank[n.index], n.index, n.version)
    return entry
