"""Placement preferences' runs (``--placement-pref spread=node.labels.X``, or
``engine.labels.X``), apart from the
engine for size: one heap (or walk) per branch of the label tree, each task taking the best node
of the branches holding fewest of its job; and the scan used under the random strategy or
sampling. Both place tasks[pos:end] of one class on ``engine``'s snapshot and say where they
stopped and why, as ``PlacementEngine._run`` does."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scheduler.placement.class_runs import ClassRuns
from scheduler.placement.filters import Filter, Identity, PlacementCycle
from scheduler.placement.load_order import HeapEntry, Walk, requeue
from scheduler.placement.preferences import (
    Path,
    add_to_branches,
    branch_counts,
    preferred,
    spread_path,
)
from scheduler.placement.request import PlacementRequest
from scheduler.placement.results import Assignment, PlacementResult, Task, new_assignment
from scheduler.placement.snapshot import NodeSnapshot, PlacedContainer, lacks_image

if TYPE_CHECKING:
    from scheduler.placement.engine import PlacementEngine, Stop, Until


@dataclass(slots=True)
class SpreadRun:
    """One attempt's heaps (and walks) per branch, and the job's counts per branch, for the
    rest of its class (class_runs.py)."""

    chain: tuple[Filter, ...]
    cycle: PlacementCycle
    leaves: dict[Path, list[HeapEntry]]
    walks: dict[Path, Walk]  # a walk per branch, over that branch's candidates
    counts: dict[Path, int]
    member: bytes  # static candidates, one byte per node index
    make: Callable[[NodeSnapshot], HeapEntry | None]  # a node's entry, None if it cannot take it
    seen: int  # the class's assignments this run has taken into account (ClassRuns.mark)
    lifts: list[float] | None  # load_order.requeue's, when the branches walk (as heap_runs)
    # Every branch is in one of these three. Between two placements of this run only the
    # branch it chose changes, and between two of its calls only the branches of the nodes
    # the other attempt placed on (spread_run opens those again): so only those are looked at
    # again (``open_``). A top node with guards is judged per task (they read the task's
    # name): its branch stays open.
    open_: list[Path]
    # Branches whose top is known good for any task of the class, each with its key for the
    # usual single preference (its count, its top; unique, as tops are of distinct nodes):
    # the choice is a min over these keys, in C.
    keys: dict[Path, tuple[int, HeapEntry, Path]] = field(default_factory=dict)
    empty: set[Path] = field(default_factory=set)  # branches known to have no node left


def spread_run(engine: PlacementEngine, runs: ClassRuns, req: PlacementRequest,
               task: Task) -> SpreadRun:
    """The attempt's state: made on its first call, brought up to date on later ones."""
    known = runs.states.get(id(req))
    if isinstance(known, SpreadRun):
        # The class's other attempt placed since: count those containers, and offer their
        # nodes again (one dropped here may take the task now); their branches' tops are no
        # longer known.
        make = known.make
        placed = runs.placed_since(known.seen)
        for node in placed:
            add_to_branches(known.counts, spread_path(req, node), 1)
        for node in dict.fromkeys(placed):
            if known.member[node.index]:
                path = spread_path(req, node)
                if known.keys.pop(path, None) is not None or path in known.empty or \
                        path not in known.leaves:
                    known.empty.discard(path)
                    known.open_.append(path)
                entry = make(node)
                if entry is not None:
                    known.leaves.setdefault(path, [])
                    heapq.heappush(known.leaves[path], entry)
        return known
    chain = tuple(f for f in engine._dynamic if f.relevant(req))
    cycle = PlacementCycle(engine.cluster, [Identity(task.spec.name, task.id, req)])
    nodes = engine.cluster.nodes
    leaves: dict[Path, list[HeapEntry]] = {}
    walks: dict[Path, Walk] = {}
    order = engine._order
    make_entry = engine._entry_maker(req, cycle, chain)
    if order is not None and engine._walks_pay(req, cycle, runs.remaining()):
        runs.refresh_order(order)
        make_entries = engine._entries_maker(req, cycle, chain)
        for path, member in engine._static.branches(req, cycle).items():
            leaves[path] = []
            walks[path] = order.walk(req, member, make_entries)
    else:
        for made in engine._entries(req, engine._candidates(req, cycle), cycle, chain):
            leaves.setdefault(spread_path(req, nodes[made[3]]), []).append(made)
        for heap in leaves.values():
            heapq.heapify(heap)
    counts = branch_counts(req, nodes) if engine.cluster.job_counts.get(req.job) else {}
    state = SpreadRun(chain, cycle, leaves, walks, counts, engine._static.selector(req, cycle),
                      make_entry, runs.mark(),
                      order.lifts(req) if walks and order is not None else None, list(leaves))
    runs.states[id(req)] = state
    return state


def run_spread(engine: PlacementEngine, runs: ClassRuns, req: PlacementRequest,
               relaxed: tuple[str, ...], tasks: list[Task], pos: int, end: int,
               result: PlacementResult, *, defer: bool, until: Until = None,
               ) -> tuple[int, Stop]:
    """The engine's heap run (heap_runs.py) with one heap per branch of the preference tree:
    each task takes the best top among the heaps of the branches holding fewest of its job."""
    state = spread_run(engine, runs, req, tasks[pos])
    try:
        return _spread(engine, req, relaxed, state, tasks, pos, end, result, defer=defer,
                       until=until)
    finally:
        state.seen = runs.mark()


def _spread(engine: PlacementEngine, req: PlacementRequest, relaxed: tuple[str, ...],
            state: SpreadRun, tasks: list[Task], pos: int, end: int, result: PlacementResult,
            *, defer: bool, until: Until) -> tuple[int, Stop]:
    cycle, leaves, walks, counts, make = (state.cycle, state.leaves, state.walks, state.counts,
                                          state.make)
    lifts = state.lifts
    group_of = engine._order.group_of if engine._order is not None else []
    nodes = engine.cluster.nodes
    place, assignments = engine.cluster.place, result.assignments
    heappop, heapreplace = heapq.heappop, heapq.heapreplace
    depth = len(req.spread)
    keys, empty, open_ = state.keys, state.empty, state.open_
    while pos < end:
        task = tasks[pos]
        aside: list[tuple[list[HeapEntry], HeapEntry]] = []
        guarded: list[Path] = []  # open branches whose top has guards yet takes this task
        for path in open_:
            heap = leaves[path]
            while True:  # bring a node that can take this task to the top, or empty it
                if walks:
                    bounds = walks[path].bounds
                    if bounds and (not heap or heap[0] >= bounds[0][0]):
                        walks[path].settle(heap)
                if not heap:
                    break
                top = heap[0]
                node = nodes[top[3]]
                if top[4] != node.version:
                    made = make(node)
                    if made is not None:
                        heapreplace(heap, made)
                    else:
                        heappop(heap)
                    continue
                if node.guards:
                    cycle.identities = [Identity(task.spec.name, task.id, req)]
                    if engine._guarded(req, node, cycle):
                        aside.append((heap, heappop(heap)))
                        continue
                    guarded.append(path)
                else:
                    keys[path] = (counts.get(path, 0), top, path)
                break
            if not heap and not aside:  # met every node of the branch: none is left
                empty.add(path)
        # Every other open branch is known now (good, or empty); with entries set aside,
        # every branch is opened again below.
        state.open_ = open_ = guarded
        if not keys and not guarded:
            if not aside:
                return pos, "exhausted"
            open_ = _put_back(aside, state)
            if defer:
                return pos, "guarded"
            engine._refuse_one(req, relaxed, task, result)
            pos += 1
            continue
        if guarded:
            live = [*keys, *guarded]  # before open_ (the same list) takes the chosen path
            path = min(live, key=lambda p: _rank(p, counts, leaves))
        elif depth == 1:
            path = min(keys.values())[2]
        else:
            path = min(keys, key=lambda p: _rank(p, counts, leaves))
        if keys.pop(path, None) is not None:
            open_.append(path)
        heap = leaves[path]
        top = heap[0]
        chosen = nodes[top[3]]
        unmet = engine._unmet(req, chosen) if relaxed else ()
        place(chosen, PlacedContainer(task.id, task.spec.name, req))
        assignments.append(new_assignment((task.id, chosen.id, unmet)))
        if depth == 1:  # add_to_branches, inlined: the path is its only branch
            counts[path] = counts.get(path, 0) + 1
        else:
            add_to_branches(counts, path, 1)
        requeue(heap, chosen, lifts, group_of, make)
        if aside:
            open_ = _put_back(aside, state)
        pos += 1
        if until is not None and until(chosen):
            return pos, "revived"
    return pos, "done"


def _put_back(aside: list[tuple[list[HeapEntry], HeapEntry]], state: SpreadRun,
              ) -> list[Path]:
    """Entries a task's guards set aside go back on their heaps: tops may move, so every
    branch is open again (returned, as ``state.open_``)."""
    for heap, entry in aside:
        heapq.heappush(heap, entry)
    state.keys.clear()
    state.empty.clear()
    state.open_ = list(state.leaves)
    return state.open_

def _rank(path: Path, counts: dict[Path, int], leaves: dict[Path, list[HeapEntry]],
          ) -> tuple[list[int], HeapEntry]:
    """least_filled, then the best top, as one key: fewest at each level in turn."""
    return [counts.get(path[:level], 0) for level in range(1, len(path) + 1)], leaves[path][0]


def run_spread_scan(engine: PlacementEngine, req: PlacementRequest,
                    relaxed: tuple[str, ...], tasks: list[Task], pos: int, end: int,
                    result: PlacementResult, *, defer: bool, until: Until = None,
                    ) -> tuple[int, Stop]:
    """Preferences under the random strategy or sampling: every candidate is checked per
    task (the branch needs them all), then the choice is random or the best of a sample
    of the preferred nodes."""
    chain = tuple(f for f in engine._dynamic if f.relevant(req))
    cycle = PlacementCycle(engine.cluster, [Identity(tasks[pos].spec.name, tasks[pos].id, req)])
    cands = list(engine._static.get(req, cycle))
    rng, score, rank = engine._rng, engine.pipeline.scorer.key, engine._rank
    sample, n = engine.options.sample, len(engine.cluster.nodes)
    k = max(2, math.ceil(math.log2(max(n, 2)))) if sample == "log2" else \
        1 if sample == "all" else max(1, math.ceil(float(sample) * n))
    while pos < end:
        task = tasks[pos]
        cycle.identities = [Identity(task.spec.name, task.id, req)]
        cands = [node for node in cands if engine._feasible(req, node, cycle, chain)]
        open_ = [node for node in cands
                 if not (node.guards and engine._guarded(req, node, cycle))]
        if not open_:
            if not cands:
                return pos, "exhausted"
            if defer:
                return pos, "guarded"
            engine._refuse_one(req, relaxed, task, result)
            pos += 1
            continue
        keep = preferred(req, open_, engine.cluster.nodes)
        if engine.pipeline.scorer.ordered:
            drawn = rng.sample(keep, min(k, len(keep)))
            chosen = min(drawn, key=lambda node: (score(req, node), lacks_image(req, node),
                                                  rank[node.index]))
        else:
            chosen = keep[rng.randrange(len(keep))]
        unmet = engine._unmet(req, chosen) if relaxed else ()
        engine.cluster.place(chosen, PlacedContainer(task.id, task.spec.name, req))
        result.assignments.append(Assignment(task.id, chosen.id, unmet))
        pos += 1
        if until is not None and until(chosen):
            return pos, "revived"
    return pos, "done"
