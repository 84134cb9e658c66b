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
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from scheduler.placement.request import PlacementRequest
from scheduler.placement.scorers import Score
from scheduler.placement.scorers.spread import SpreadScorer
from scheduler.placement.snapshot import ClusterSnapshot, NodeSnapshot

SLICE = 16  # members of its class a walk meets at a time, about (see Walk)
MAX_SLICE = 1024  # entries of an order a walk scans at a time, at most
MAX_GROUPS = 64  # capacities beyond this: walking many orders would cost more than a heap
# (score, 1 if the node lacks the image else 0, tie-break rank, node index, node version)
HeapEntry = tuple[Score, int, int, int, int]


def _lower(own: float, shift: float) -> float:
    """A bound no score computed from these terms can fall below, float rounding included
    (inlined in ``Walk.settle``)."""
    return own + shift - 1e-9 * (abs(own) + abs(shift) + 1.0)


class LoadOrder:
    """Per capacity (cpu, memory), the nodes sorted by the scorer's own term.

    Entries are (own term, node index, stamp); a node that changes gets a fresh entry with a
    new stamp and its old one stays behind, skipped by walks, until stale entries make up half
    of an order and it is compacted: so a refresh sorts a few new entries into a sorted run
    (timsort merges it) instead of filtering every order."""

    def __init__(self, cluster: ClusterSnapshot, scorer: SpreadScorer) -> None:
        self.nodes = cluster.nodes
        self.scorer = scorer
        groups: dict[tuple[int, int], int] = {}
        self.group_of = [groups.setdefault((n.cap_cpu, n.cap_mem), len(groups))
                         for n in self.nodes]
        self.capacities = list(groups)
        self._members: list[list[int]] = [[] for _ in groups]  # node indices, per group
        for i, g in enumerate(self.group_of):
            self._members[g].append(i)
        self.orders: list[list[tuple[float, int, int]]] = [[] for _ in groups]
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
        fresh: dict[int, list[tuple[float, int, int]]] = {}
        stamp = self._last_stamp
        indices = list(changed)
        changed.clear()
        for i, own in zip(indices, self.scorer.own_terms([nodes[i] for i in indices]),
                          strict=True):
            stamp += 1
            stamps[i] = stamp
            entry = (own, i, stamp)
            group = fresh.get(group_of[i])
            if group is None:
                fresh[group_of[i]] = [entry]
            else:
                group.append(entry)
        self._last_stamp = stamp
        for g, entries in fresh.items():
            order = self.orders[g]
            self._stale[g] += len(entries) if order else 0
            if 2 * self._stale[g] > len(order):
                order = self.orders[g] = [e for e in order if stamps[e[1]] == e[2]]
                self._stale[g] = 0
            order += entries
            order.sort()  # timsort: the order is one sorted run already

    def _rebuild(self) -> None:
        """Every order afresh: node i's entry is stamped ``base + 1 + i``."""
        base = self._last_stamp
        terms = self.scorer.own_terms(self.nodes)
        self.stamps[:] = range(base + 1, base + 1 + len(self.nodes))
        self._last_stamp = base + len(self.nodes)
        for g, members in enumerate(self._members):
            stamp_of = (base + 1).__add__  # in C below: no loop step per node
            self.orders[g] = sorted(zip(map(terms.__getitem__, members), members,
                                        map(stamp_of, members), strict=True))
            self._stale[g] = 0

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

    __slots__ = ("_cursors", "_entries", "_member", "_nodes", "_orders", "_shifts", "_slice",
                 "_stamps", "bounds")

    def __init__(self, order: LoadOrder, req: PlacementRequest, member: bytes,
                 entries: Callable[[Iterable[NodeSnapshot]], list[HeapEntry]]) -> None:
        self._nodes = order.nodes
        self._orders = order.orders
        self._stamps = order.stamps
        self._member = member
        self._entries = entries
        # Entries per slice: about SLICE members whatever share of the nodes are members (a
        # preference's branch holds a third of them, say).
        members = member.count(1)
        self._slice = min(MAX_SLICE, SLICE * len(member) // members) if members else SLICE
        term = order.scorer.request_term
        self._shifts = [term(req, cpu, mem) for cpu, mem in order.capacities]
        self._cursors = [0] * len(self._orders)
        # (lower bound on the score of any member not met yet in group g, g), least first
        # The first entry of each order bounds them all, member or not (as in ``settle``).
        self.bounds = [(_lower(order[0][0], self._shifts[g]), g)
                       for g, order in enumerate(self._orders) if order]
        heapq.heapify(self.bounds)

    def settle(self, heap: list[HeapEntry]) -> None:
        """Meet nodes until ``heap``'s top beats every node not met yet, or none is left."""
        # Scores here are floats: a LoadOrder is only made for the SpreadScorer.
        bounds, orders, cursors, shifts = self.bounds, self._orders, self._cursors, self._shifts
        member, nodes, entries, stamps = self._member, self._nodes, self._entries, self._stamps
        step = self._slice
        heappush, heapreplace, heappop = heapq.heappush, heapq.heapreplace, heapq.heappop
        while bounds and (not heap or heap[0][0] >= bounds[0][0]):  # type: ignore[operator]
            g = bounds[0][1]
            order = orders[g]
            at, end = cursors[g], len(order)
            stop = min(end, at + step)
            # Skip nodes not of this class, and entries a node's later change left behind.
            met = [nodes[i] for _, i, stamp in order[at:stop]
                   if member[i] and stamps[i] == stamp]
            for made in entries(met):
                heappush(heap, made)
            cursors[g] = stop
            if stop >= end:
                heappop(bounds)
            else:
                # The first entry not met bounds every later one (the order is sorted), member
                # or not.
                own, shift = order[stop][0], shifts[g]
                heapreplace(bounds, (own + shift - 1e-9 * (abs(own) + abs(shift) + 1.0), g))
