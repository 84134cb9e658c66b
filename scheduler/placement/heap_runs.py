"""The engine's exact run (spread or binpack, every candidate considered), apart from the
engine for size: a heap of candidates keyed by score, fed by a walk of the shared load order
for long runs; identical tasks pop the best node and only that node is re-scored. The heap
and walk outlive the call for the rest of the class (class_runs.py)."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.placement.class_runs import ClassRuns
from scheduler.placement.filters import Filter, Identity, PlacementCycle
from scheduler.placement.load_order import SHRINK, STALE, HeapEntry, Walk, requeue
from scheduler.placement.request import PlacementRequest
from scheduler.placement.results import PlacementResult, Task, new_assignment
from scheduler.placement.snapshot import NodeSnapshot, PlacedContainer

if TYPE_CHECKING:
    from scheduler.placement.engine import PlacementEngine, Stop, Until


# A run re-scores the node it placed on only when it reaches the top again (load_order.requeue)
# when it has this many candidates per task or more, or walks (which it does with more still):
# most nodes then never come back. With fewer, most do, and paying for the lower entry besides the
# score costs more than it saves (measured on bench/placement.py's sweep).
LAZY_CANDIDATES_PER_TASK = 2


@dataclass(slots=True)
class HeapRun:
    """One attempt's heap (and walk) for the rest of its class."""

    chain: tuple[Filter, ...]
    cycle: PlacementCycle
    heap: list[HeapEntry]
    walk: Walk | None
    member: bytes  # static candidates, one byte per node index
    make: Callable[[NodeSnapshot], HeapEntry | None]  # a node's entry, None if it cannot take it
    seen: int  # the class's assignments this run has taken into account (ClassRuns.mark)
    # load_order.requeue's lifts per capacity group, or None: the chosen node is re-scored
    # at once (see LAZY_CANDIDATES_PER_TASK)
    lifts: list[float] | None


def heap_run(engine: PlacementEngine, runs: ClassRuns, key: bytes, req: PlacementRequest,
             relaxed: tuple[str, ...], task: Task) -> HeapRun:
    """The attempt's state: made on its first call, brought up to date on later ones."""
    known = runs.states.get(id(req))
    if isinstance(known, HeapRun):
        offer_changed(engine, runs, req, known)
        return known
    chain = tuple(f for f in engine._dynamic if f.relevant(req))
    cycle = PlacementCycle(engine.cluster, [Identity(task.spec.name, task.id, req)])
    tasks = runs.remaining()
    walk = engine._walk(runs, key, req, bool(relaxed), cycle, chain, tasks)
    heap = [] if walk is not None else engine._heap_for(key, req, bool(relaxed), cycle, chain)
    order = engine._order
    state = HeapRun(chain, cycle, heap, walk, engine._static.selector(req, cycle),
                    engine._entry_maker(req, cycle, chain), runs.mark(),
                    order.lifts(req) if order is not None and (
                        walk is not None or len(heap) >= LAZY_CANDIDATES_PER_TASK * tasks)
                    else None)
    runs.states[id(req)] = state
    return state


def offer_changed(engine: PlacementEngine, runs: ClassRuns, req: PlacementRequest,
                  state: HeapRun) -> None:
    """Offer again the nodes the class's other attempt placed on since this one last ran: one
    this run had dropped may take it now (a soft image== that a sibling's image made hold).
    A node still in the heap gets a second entry, which is harmless: an entry is only used
    once its version is the node's."""
    make = state.make
    for node in dict.fromkeys(runs.placed_since(state.seen)):
        if state.member[node.index]:
            entry = make(node)
            if entry is not None:
                heapq.heappush(state.heap, entry)


def run_heap(engine: PlacementEngine, runs: ClassRuns, key: bytes, req: PlacementRequest,
             relaxed: tuple[str, ...], tasks: list[Task], pos: int, end: int,
             result: PlacementResult, *, defer: bool, until: Until = None,
             ) -> tuple[int, Stop]:
    """Place tasks[pos:end] while nodes remain, as ``PlacementEngine._run`` says."""
    state = heap_run(engine, runs, key, req, relaxed, tasks[pos])
    try:
        return _run(engine, req, relaxed, state, tasks, pos, end, result, defer=defer,
                    until=until)
    finally:
        state.seen = runs.mark()


def _run(engine: PlacementEngine, req: PlacementRequest, relaxed: tuple[str, ...],
         state: HeapRun, tasks: list[Task], pos: int, end: int, result: PlacementResult, *,
         defer: bool, until: Until) -> tuple[int, Stop]:
    cycle, heap, walk, make = state.cycle, state.heap, state.walk, state.make
    lifts: list[float] | None = state.lifts  # annotated: mypyc infers None from the tuple
    nodes = engine.cluster.nodes
    group_of = engine._order.group_of if engine._order is not None else []
    place, assignments = engine.cluster.place, result.assignments
    heappop, heapreplace = heapq.heappop, heapq.heapreplace
    # The walk's test, inlined: meet more nodes only when the top may not be the best.
    bounds = walk.bounds if walk is not None else []
    settle = walk.settle if walk is not None else _no_walk
    no_aside: list[HeapEntry] = []  # shared, never filled: most tasks set nothing aside
    while pos < end:
        task = tasks[pos]
        aside = no_aside
        chosen: NodeSnapshot | None = None
        while True:
            if bounds and (not heap or heap[0] >= bounds[0][0]):
                settle(heap)
            if not heap:
                break
            top = heap[0]
            node = nodes[top[3]]
            if top[4] != node.version:  # changed since scored: check and score again
                made = make(node)
                if made is not None:
                    heapreplace(heap, made)
                else:
                    heappop(heap)
                continue
            if node.guards:
                cycle.identities = [Identity(task.spec.name, task.id, req)]
                if engine._guarded(req, node, cycle):
                    if aside is no_aside:
                        aside = []
                    aside.append(heappop(heap))
                    continue
            chosen = node
            break
        if chosen is None:
            if not aside:
                return pos, "exhausted"
            # Only this task is barred; its siblings may still fit there.
            for entry in aside:
                heapq.heappush(heap, entry)
            if defer:
                return pos, "guarded"
            engine._refuse_one(req, relaxed, task, result)
            pos += 1
            continue
        # What was relaxed is judged before the task itself joins the node.
        unmet = engine._unmet(req, chosen) if relaxed else ()
        place(chosen, PlacedContainer(task.id, task.spec.name, req))
        assignments.append(new_assignment((task.id, chosen.id, unmet)))
        # The chosen node is still heap[0]: its entry for the next identical task.
        if lifts is not None:  # requeue's lower entry, inlined: this runs per placement
            score, lacks, rank, index, _ = top
            heapreplace(heap, (score * SHRINK + lifts[group_of[index]],  # type: ignore[operator]
                               lacks, rank, index, STALE))
        else:
            requeue(heap, chosen, lifts, group_of, make)
        if aside:
            for entry in aside:
                heapq.heappush(heap, entry)
        pos += 1
        if until is not None and until(chosen):
            return pos, "revived"
    return pos, "done"


def _no_walk(heap: list[HeapEntry]) -> None:
    """The walk's ``settle`` where there is no walk (never called: its bounds are empty)."""

