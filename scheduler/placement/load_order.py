"""Nodes in order of load, shared by every class: spread placement without a heap per class.

Under the spread strategy a node's score is its weight once the request is added plus a small
count term (scorers/spread.py). For nodes of equal capacity that is the node's own term (its
load and count) plus a term of the request and the capacity alone. So one order of the nodes by
their own term per capacity, kept across classes and refreshed only where nodes changed (their
version moved), lets a class find its best nodes by walking those orders from the least loaded,
scoring nodes as it meets them, instead of scoring every candidate to build a heap of its own.

A ``Walk`` stops once the best node scored so far is strictly better than any node it has not
met could be: a lower bound from the order, less a margin far above float rounding. Ties in
score fall to the full key (image held, rank, index) among nodes met, and a node that could tie
is always met first, so the choice is exactly the one a heap over every candidate makes.

Nodes of equal own term sort by their tie-break rank. That matters for empty nodes, whose own
term is exactly 0.0: every empty node of a capacity scores exactly the request's term (the
same float), so in a fresh cluster thousands of nodes tie. An empty node not met yet cannot
beat the key (request's term, image missing, rank of the first empty entry not met), and a
node with containers scores strictly more than an empty one: so a walk stops at the first
empty nodes in rank order instead of meeting every tied node. That holds only while no node
not met stores the request's image (it would win the tie whatever its rank): a walk meets the
members that store it first, and where there are many of them it keeps to the float bound.
"""

from __future__ import annotations

import heapq
import math
import operator
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from itertools import compress, repeat

from scheduler.placement.request import PlacementRequest
from scheduler.placement.scorers import Score
from scheduler.placement.scorers.spread import COUNT_WEIGHT, SpreadScorer
from scheduler.placement.snapshot import ClusterSnapshot, NodeSnapshot

SLICE = 32  # members of its class a walk meets at a time, about (see Walk; 16: +1 % instructions)
# A walk meets up to this many members storing the request's image first, and then stops at
# the first empty nodes (the module's note); with more, it meets every empty node that ties.
MAX_HOLDERS = 256
MAX_SLICE = 1024  # entries of an order a walk scans at a time, at most
MAX_GROUPS = 64  # capacities beyond this: walking many orders would cost more than a heap
# (score, 1 if the node lacks the image else 0, tie-break rank, node index, node version)
HeapEntry = tuple[Score, int, int, int, int]
_NODE, _STAMP = operator.itemgetter(2), operator.itemgetter(3)  # of an order's entry
# A walk's bound: (score, image missing, rank); (float bound, -1, -1) when only the score is
# known, which any entry of that score (its image flag is 0 or 1) is not below.
Bound = tuple[float, int, int]
_HOLDERS = -1  # a walk's pseudo-group: its members that store the image, met before the rest
SHRINK = 1.0 - 1e-9  # requeue(): a score's rounding, many times over
STALE = -1  # a version no node has: a lower entry made by requeue() is always checked again


def requeue(heap: list[HeapEntry], node: NodeSnapshot, lifts: list[float] | None,
            group_of: list[int], make: Callable[[NodeSnapshot], HeapEntry | None]) -> None:
    """``node``, whose exact entry is ``heap[0]``, has just taken a task: replace that entry
    with one for the next identical task. With ``lifts`` (``LoadOrder.lifts``, under the
    spread weighting), an entry that sorts below the node's next exact one and is never taken
    for exact (its version is no node's), so a run re-scores the node only if it reaches the
    top again: most nodes a spread run places on never do. Without, the exact entry now (or
    none, when the node can take no more).

    The next score is at least the score plus the request's term plus a container's count
    (less float rounding, a few units in the last place of the score); the lower entry adds
    half of that and takes a billionth of the score off, far more than rounding either way."""
    if lifts is not None:
        score, lacks, rank, index, _ = heap[0]
        heapq.heapreplace(heap, (score * SHRINK + lifts[group_of[index]],  # type: ignore[operator]
                                 lacks, rank, index, STALE))
        return
    made = make(node)
    if made is not None:
        heapq.heapreplace(heap, made)
    else:
        heapq.heappop(heap)


class LoadOrder:
    """Per capacity (cpu, memory), the nodes sorted by the scorer's own term, then rank.

    Entries are (own term, rank, node index, stamp); a node that changes gets a fresh entry with a
    new stamp and its old one stays behind, skipped by walks, until stale entries make up half
    of an order and it is compacted: so a refresh sorts a few new entries into a sorted run
    (timsort merges it) instead of filtering every order."""

    def __init__(self, cluster: ClusterSnapshot, scorer: SpreadScorer,
                 rank: list[int]) -> None:
        self.cluster = cluster
        self.nodes = cluster.nodes
        self.scorer = scorer
        self.rank = rank  # the engine's tie-break rank of each node
        groups: dict[tuple[int, int], int] = {}
        self.group_of = [groups.setdefault((n.cap_cpu, n.cap_mem), len(groups))
                         for n in self.nodes]
        self.capacities = list(groups)
        self._members: list[list[int]] = [[] for _ in groups]  # node indices, per group
        for i, g in enumerate(self.group_of):
            self._members[g].append(i)
        self.orders: list[list[tuple[float, int, int, int]]] = [[] for _ in groups]
        self.stamps = [0] * len(self.nodes)  # the stamp of each node's live entry
        self._stale = [0] * len(groups)
        self._last_stamp = 0
        self._changed = cluster.watch()

    @property
    def usable(self) -> bool:
        return len(self.capacities) <= MAX_GROUPS

    def refresh(self) -> None:
        """Give every node changed since the last refresh a fresh entry in its order."""
        changed = self._changed
        if not changed:
            return
        nodes, group_of, stamps = self.nodes, self.group_of, self.stamps
        if len(changed) == len(nodes):  # every node (the first refresh): build, group by group
            changed.clear()
            self._rebuild()
            return
        # In C but for the own terms: a loop step per changed node was a fifth of a walking
        # job's cost. The new entries are made in order (by rank, then stably by term: sorts
        # on plain numbers), so each order's sort below merges two sorted runs.
        rank_of = self.rank.__getitem__
        indices = sorted(changed, key=rank_of)
        changed.clear()
        terms = self.scorer.own_terms(map(nodes.__getitem__, indices))
        by_term = sorted(range(len(indices)), key=terms.__getitem__)
        indices = list(map(indices.__getitem__, by_term))
        first = self._last_stamp + 1
        self._last_stamp += len(indices)
        new_stamps = range(first, first + len(indices))
        deque(map(stamps.__setitem__, indices, new_stamps), maxlen=0)
        made = list(zip(map(terms.__getitem__, by_term), map(rank_of, indices), indices,
                        new_stamps, strict=True))
        if len(self.orders) == 1:
            fresh = {0: made}
        else:
            groups = list(map(group_of.__getitem__, indices))
            fresh = {g: list(compress(made, map(operator.eq, groups, repeat(g))))
                     for g in dict.fromkeys(groups)}
        for g, entries in fresh.items():
            order = self.orders[g]
            self._stale[g] += len(entries) if order else 0
            if 2 * self._stale[g] > len(order):
                live = map(operator.eq, map(stamps.__getitem__, map(_NODE, order)),
                           map(_STAMP, order))
                order = self.orders[g] = list(compress(order, live))
                self._stale[g] = 0
            # Only from where the least new entry goes: the rest (empty nodes, in a young
            # cluster most of the order) is not read again. Timsort merges the two runs.
            at = bisect_left(order, entries[0])
            tail = order[at:]
            tail += entries
            tail.sort()
            order[at:] = tail

    def _rebuild(self) -> None:
        """Every order afresh, every entry stamped 0: no entry made before is left, and a
        refresh stamps from 1 on (a stamp per node was 20,000 new ints)."""
        # A node without containers has 0.0 for its own term: in a cluster without any, no
        # node need be read (a pass over 20,000 nodes' fields).
        terms = self.scorer.own_terms(self.nodes) if self.cluster.container_count else \
            [0.0] * len(self.nodes)
        self.stamps[:] = repeat(0, len(self.nodes))
        term_of, rank_of = terms.__getitem__, self.rank.__getitem__
        for g, members in enumerate(self._members):
            # By rank, then (stable) by term: two sorts on plain numbers cost a fraction of
            # one on tuples, and they give the same order (ranks are distinct).
            ordered = sorted(members, key=rank_of)
            ordered.sort(key=term_of)
            self.orders[g] = list(zip(map(term_of, ordered), map(rank_of, ordered), ordered,
                                      repeat(0), strict=False))
            self._stale[g] = 0

    def lifts(self, req: PlacementRequest) -> list[float]:
        """Per group, a lift for ``requeue``: half of what a node's score grows by, at least,
        when it takes ``req`` once more (the request's term and one container's count)."""
        term = self.scorer.request_term
        return [0.5 * (term(req, cpu, mem) + COUNT_WEIGHT) for cpu, mem in self.capacities]

    def walk(self, req: PlacementRequest, member: bytes,
             entries: Callable[[Iterable[NodeSnapshot]], list[HeapEntry]]) -> Walk:
        """A walk for one run of one class over the nodes whose ``member`` byte is 1 (call
        ``refresh`` first if nodes changed since the last walk was made)."""
        return Walk(self, req, member, entries)


class Walk:
    """Meets the nodes of a ``LoadOrder`` least loaded first, handing member nodes to
    ``entries`` (the heap entries of those that can take the request) and pushing the entries
    on the caller's heap. Valid while only the walk's caller places on the nodes it met
    (a class's run); the order itself is not touched.

    Nodes are met a slice of the order at a time (about ``SLICE`` members), not one by one:
    meeting a few more nodes than the stopping rule needs changes no choice (the heap is exact
    over every node met, and the bound is the first entry not met), and one comprehension per
    slice costs a fraction of a loop step and a call per node."""

    __slots__ = ("_cursors", "_entries", "_held", "_member", "_nodes", "_orders", "_shifts",
                 "_slice", "_stamps", "_ties", "bounds")

    def __init__(self, order: LoadOrder, req: PlacementRequest, member: bytes,
                 entries: Callable[[Iterable[NodeSnapshot]], list[HeapEntry]]) -> None:
        self._nodes = order.nodes
        self._orders = order.orders
        self._stamps = order.stamps
        self._entries = entries
        # Members that store the image: met first (pseudo-group _HOLDERS), and left out of the
        # orders' walk, so that empty nodes tie by rank alone (the module's note).
        held = [i for i in order.cluster.holding(req.image) if member[i]]
        self._ties = len(held) <= MAX_HOLDERS
        self._held: list[NodeSnapshot] = []
        if held and self._ties:
            others = bytearray(member)
            for i in held:
                others[i] = 0
            member = bytes(others)
            self._held = [self._nodes[i] for i in held]
        self._member = member
        # Entries per slice: about SLICE members whatever share of the nodes are members (a
        # preference's branch holds a third of them, say).
        members = member.count(1)
        self._slice = min(MAX_SLICE, SLICE * len(member) // members) if members else SLICE
        term = order.scorer.request_term
        self._shifts = [term(req, cpu, mem) for cpu, mem in order.capacities]
        self._cursors = [0] * len(self._orders)
        # (lower bound on the key of any member not met yet in group g, g), least first
        # The first entry of each order bounds them all, member or not (as in ``settle``).
        self.bounds: list[tuple[Bound, int]] = [
            (self._bound(order[0], g), g) for g, order in enumerate(self._orders) if order]
        if self._held:
            self.bounds.append(((-math.inf, -1, -1), _HOLDERS))
        heapq.heapify(self.bounds)

    def _bound(self, first: tuple[float, int, int, int], g: int) -> Bound:
        """What no member from ``first`` on in group g's order can score below (``settle``
        inlines this)."""
        own, shift = first[0], self._shifts[g]
        if own == 0.0 and self._ties:
            return (shift, 1, first[1])
        return (own + shift - 1e-9 * (abs(own) + abs(shift) + 1.0), -1, -1)

    def settle(self, heap: list[HeapEntry]) -> None:
        """Meet nodes until ``heap``'s top beats every node not met yet, or none is left."""
        # Scores here are floats: a LoadOrder is only made for the SpreadScorer.
        bounds, orders, cursors, shifts = self.bounds, self._orders, self._cursors, self._shifts
        member, nodes, entries, stamps = self._member, self._nodes, self._entries, self._stamps
        step, ties = self._slice, self._ties
        heappush, heapreplace, heappop = heapq.heappush, heapq.heapreplace, heapq.heappop
        while bounds and (not heap or heap[0] >= bounds[0][0]):
            g = bounds[0][1]
            if g == _HOLDERS:
                for made in entries(self._held):
                    heappush(heap, made)
                heappop(bounds)
                continue
            order = orders[g]
            at, end = cursors[g], len(order)
            stop = min(end, at + step)
            # Skip nodes not of this class, and entries a node's later change left behind.
            met = [nodes[i] for _, _, i, stamp in order[at:stop]
                   if member[i] and stamps[i] == stamp]
            for made in entries(met):
                heappush(heap, made)
            cursors[g] = stop
            if stop >= end:
                heappop(bounds)
            else:
                # The first entry not met bounds every later one (the order is sorted), member
                # or not: _bound, inlined.
                own, rank = order[stop][0], order[stop][1]
                shift = shifts[g]
                heapreplace(bounds, ((shift, 1, rank) if own == 0.0 and ties else
                                     (own + shift - 1e-9 * (abs(own) + abs(shift) + 1.0), -1, -1),
                                     g))
