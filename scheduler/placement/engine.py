"""The placement engine: batches of tasks and apps in, assignments and explained refusals out.

Pure: no I/O, one seeded RNG, the only state is the ``ClusterSnapshot`` it updates as it
assigns. The chain for one class of identical tasks:

1. static candidates: platform, constraints, readiness, cached per node class;
2. a heap of those that pass the dynamic filters, keyed by the strategy's score; identical tasks
   pop the best node, and only that node's entry is re-scored (nothing else changed for them);
   entries of nodes changed by other classes carry a stale version and are re-checked lazily;
3. optional candidate sampling instead of the heap (Nomad's log2 N, Kubernetes' percentage);
4. placement preferences (``spread=node.labels.zone``, or ``engine.labels.zone``): one heap
   per branch of the label tree, each task taking the best node of the branches holding
   fewest of its job (preferences.py, preference_runs.py);
5. soft rules first; when nothing is left, again without them, recording what was dropped;
6. tasks that still find no node are refused with an ``Explanation`` built from a full pass.

Apps place groups of co-located containers (links, volumes-from) as one unit, all-or-nothing
when asked, rolling the snapshot back if a group fails.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import operator
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from protocol.errors import InvalidArgument
from protocol.specs import AppSpec, ContainerSpec
from scheduler.placement import spread_entries
from scheduler.placement.app_groups import colocated_groups
from scheduler.placement.class_runs import ClassRuns
from scheduler.placement.explain import Explanation, explain
from scheduler.placement.filters import Filter, Identity, PlacementCycle
from scheduler.placement.filters.max_containers import MaxContainersFilter
from scheduler.placement.filters.max_per_node import MaxPerNodeFilter
from scheduler.placement.filters.resources import ResourceFilter
from scheduler.placement.heap_runs import run_heap
from scheduler.placement.load_order import HeapEntry, LoadOrder, Walk
from scheduler.placement.options import EngineOptions
from scheduler.placement.pipeline import build_pipeline
from scheduler.placement.preference_runs import run_spread, run_spread_scan
from scheduler.placement.preferences import (
    preferred,
)
from scheduler.placement.request import (
    PlacementRequest,
    class_key,
    combine,
    compile_spec,
    validate_app,
)
from scheduler.placement.results import Assignment, PlacementResult, Refusal, Task
from scheduler.placement.rules import CONTAINER_IMAGE_KEY, IMAGE_KEY, MatchKind, Rule
from scheduler.placement.scorers.spread import SpreadScorer
from scheduler.placement.snapshot import (
    ClusterSnapshot,
    NodeSnapshot,
    PlacedContainer,
    lacks_image,
)
from scheduler.placement.spread_entries import Check
from scheduler.placement.static_cache import StaticCandidates

Stop = Literal["done", "exhausted", "guarded", "revived"]
# A run's test of the node a task just joined: True stops the run there ("revived")
Until = Callable[[NodeSnapshot], bool] | None
# A soft rule as _unmet judges it: (its text, the request with only that rule, the filters
# that judge it, and for a constraint the nodes it holds on, one byte per node)
SoftCheck = tuple[str, PlacementRequest, tuple[Filter, ...], bytes | None]
IMAGE_KEYS = (IMAGE_KEY, CONTAINER_IMAGE_KEY)
_SPEC_OF = operator.attrgetter("spec")
MAX_COMPILED = 65_536  # distinct specs remembered between batches
# Runs of at least this many tasks walk the shared load order (load_order.py) instead of
# building a heap over every candidate; shorter ones build (and cache) a heap, which one-task
# calls then reuse at O(log n) where a walk would first look for nodes changed since.
WALK_MIN_TASKS = 16
# ... and only when candidates outnumber the run's tasks this many times: meeting a node costs
# about twice what scoring it into a heap does, and a run meets about a node per task and
# more, so on small clusters the heap is as fast (bench/PLACEMENT.md; 3 rather than 4: 2 %
# fewer instructions on the 20,000-node sweep, 0.7 % more on C1M's first 30 jobs).
WALK_CANDIDATES_PER_TASK = 3


def _soft_texts(req: PlacementRequest) -> tuple[str, ...]:
    return tuple(r.text for r in req.soft)


class PlacementEngine:
    """Places tasks on one ``ClusterSnapshot``, which it updates as it goes."""

    def __init__(self, cluster: ClusterSnapshot, options: EngineOptions | None = None) -> None:
        self.cluster = cluster
        self.options = options or EngineOptions()
        self.pipeline = build_pipeline(self.options.strategy,
                                       classic=self.options.weighting == "swarm")
        self._rng = random.Random(self.options.seed)
        # Score ties go to a node that already holds the image (no fetch before it starts),
        # then to a seeded rank per node: deterministic, yet not always the first node.
        ranks = list(range(len(cluster.nodes)))
        self._rng.shuffle(ranks)
        self._rank = ranks
        self._static = StaticCandidates(cluster, self.pipeline.static)
        self._bare_cycle = PlacementCycle(cluster)  # no identities: for filters that need none
        # A node's container limit is fixed with the snapshot (its label or the cluster's
        # default): where no node has one, that filter cannot refuse and is left out of the
        # checks run for every node met (explanations still run the whole pipeline).
        limited = any(n.max_containers is not None for n in cluster.nodes)
        self._dynamic = tuple(f for f in self.pipeline.dynamic if not f.identity and (
            limited or not isinstance(f, MaxContainersFilter)))
        self._identity = tuple(f for f in self.pipeline.dynamic if f.identity)
        self._compiled: dict[bytes, PlacementRequest] = {}
        self._heaps: OrderedDict[tuple[bytes, bool], list[HeapEntry]] = OrderedDict()
        # id of a request → (the request, how _unmet judges each of its soft rules)
        self._singles: dict[int, tuple[PlacementRequest, tuple[SoftCheck, ...]]] = {}
        # Only for shoal's spread weighting, whose score splits into a node's own term and the
        # request's; ``shared_order=False`` keeps a heap per class (the reference the property
        # tests hold it to).
        scorer = self.pipeline.scorer
        order = LoadOrder(cluster, scorer, self._rank) if isinstance(scorer, SpreadScorer) and \
            self.options.shared_order else None
        self._order = order if order is not None and order.usable else None

    # --- public API -----------------------------------------------------------------------
    def compile(self, spec: ContainerSpec) -> tuple[bytes, PlacementRequest]:
        """Validate a spec (``InvalidArgument`` on bad input) and return its class."""
        key = class_key(spec)
        req = self._compiled.get(key)
        if req is None:
            if len(self._compiled) >= MAX_COMPILED:  # bounded: specs are user input
                self._compiled.clear()
            req = self._compiled[key] = compile_spec(spec)
        return key, req

    def place_batch(self, tasks: Sequence[Task]) -> PlacementResult:
        """Place as many tasks as fit; refuse the rest with an explanation.

        Every spec is validated before anything is placed, so bad input changes nothing.
        Tasks are placed class by class (identical specs together), classes in arrival order
        unless ``order`` says largest-first.
        """
        classes: dict[bytes, list[Task]] = {}
        reqs: dict[bytes, PlacementRequest] = {}
        seen: dict[int, bytes] = {}  # id(spec) → key: tasks of a job share the spec object
        if tasks and len(set(map(id, map(_SPEC_OF, tasks)))) == 1:  # one job: in C, no loop
            only, req = self.compile(tasks[0].spec)
            classes[only], reqs[only] = list(tasks), req
        else:
            for task in tasks:
                key = seen.get(id(task.spec))
                if key is None:
                    key, req = self.compile(task.spec)
                    seen[id(task.spec)] = key
                    reqs[key] = req
                bucket = classes.get(key)
                if bucket is None:
                    classes[key] = [task]
                else:
                    bucket.append(task)
        keys = list(classes)
        if self.options.order == "largest-first":
            nodes = self.cluster.nodes
            cpu = sum(n.cap_cpu for n in nodes) or 1
            mem = sum(n.cap_mem for n in nodes) or 1
            # Size as a share of the whole cluster, so cpu and memory weigh alike.
            keys.sort(key=lambda k: -(reqs[k].millicpus / cpu + reqs[k].memory / mem))
        result = PlacementResult()
        for key in keys:
            self._place_class(key, reqs[key], classes[key], result)
        return result

    def place_job(self, spec: ContainerSpec, count: int, job_id: str) -> PlacementResult:
        """A job of ``count`` identical tasks, with ids ``job_id.0`` … ``job_id.{count-1}``."""
        if count < 0:
            raise InvalidArgument("count: must not be negative", details={"field": "count"})
        return self.place_batch([Task(f"{job_id}.{i}", spec) for i in range(count)])

    def place_app(self, app: AppSpec, ids: Sequence[str] | None = None) -> PlacementResult:
        """An app: co-located groups as units; nothing placed if all-or-nothing and one fails."""
        if ids is None:
            ids = [f"{app.name}.{c.name or i}" for i, c in enumerate(app.containers)]
        if len(ids) != len(app.containers):
            raise InvalidArgument("ids: one id per container of the app",
                                  details={"field": "ids"})
        validate_app(app)
        members = [(tid, spec, self.compile(spec)[1])
                   for tid, spec in zip(ids, app.containers, strict=True)]
        groups = colocated_groups(members)
        result = PlacementResult()
        placed: list[tuple[NodeSnapshot, PlacedContainer]] = []
        for group in groups:
            unit = combine([(spec.name or tid, req) for tid, spec, req in group])
            identities = [Identity(spec.name, tid, req) for tid, spec, req in group]
            node, relaxed, why = self._place_unit(unit, identities)
            if node is None:
                assert why is not None  # _place_unit explains every refusal
                if app.all_or_nothing:
                    for where, c in reversed(placed):
                        self.cluster.unplace(where, c)
                    self._heaps.clear()  # capacity came back: cached heaps miss those nodes
                    ids_in_group = ", ".join(tid for tid, _, _ in group)
                    why = why.with_note(
                        f"app {app.name} is all-or-nothing and {ids_in_group} found no node:")
                    return PlacementResult(
                        [], [Refusal(tid, why) for tid in ids])
                result.refusals.extend(Refusal(tid, why) for tid, _, _ in group)
                continue
            for tid, spec, req in group:
                c = PlacedContainer(tid, spec.name, req)
                self.cluster.place(node, c)
                placed.append((node, c))
                result.assignments.append(Assignment(tid, node.id, relaxed))
        return result

    def release(self, container_id: str) -> bool:
        """A container ended: free its node's reservation and forget cached heaps."""
        released = self.cluster.release(container_id)
        if released:
            self._heaps.clear()
        return released

    def invalidate(self) -> None:
        """Forget cached heaps: call after freeing capacity in the snapshot from outside.

        Node attributes (platform, labels, readiness) are cached per engine: when they change,
        build a new snapshot and a new engine instead.
        """
        self._heaps.clear()

    # --- one class of identical tasks -----------------------------------------------------
    def _place_class(self, key: bytes, req: PlacementRequest, tasks: list[Task],
                     result: PlacementResult) -> None:
        """Soft rules first, per task, as Swarm classic; without them only when they fail."""
        total = len(tasks)
        before = len(result.assignments)
        pos = 0
        soft = req.has_soft_rules
        relaxed_req = req.relax() if soft else req
        relaxed = _soft_texts(req)
        attempt = req
        attempt_relaxed: tuple[str, ...] = ()
        # A positive soft affinity (image==, container==, label.k==) can come to hold on the
        # node a task of this very class joins: once relaxed, such a class looks again after
        # each task, as Swarm classic judges each task on its own (the run stops there when
        # ``revived`` says so; it used to be called for one task at a time).
        revivable = any(r.soft and not r.negate for r in req.affinities)
        if req.conflict:
            pos = total  # nothing to try: explained below
            attempt_relaxed = relaxed
        runs = ClassRuns(self.cluster, result, total, len(result.assignments))

        def revived(joined: NodeSnapshot) -> bool:
            # The node this task joined is the only one that changed: when its soft rules
            # hold there now, the next task tries them again, unless the attempt with them
            # cannot take that node (its port, say): it had no node, and would have none.
            return not self._unmet(relaxed_req, joined) and runs.could_take(req, joined)

        while pos < total and not req.conflict:
            if soft:
                pos, stop = self._run(runs, key, req, (), tasks, pos, total, result,
                                      defer=True)
                if stop == "guarded":
                    # Only this task is barred (by a running container's anti-affinity) from
                    # the nodes its soft rules allow: try it alone without them.
                    after, _ = self._run(runs, key, relaxed_req, relaxed, tasks, pos, pos + 1,
                                         result, defer=False)
                    if after == pos:
                        self._refuse_one(relaxed_req, relaxed, tasks[pos], result)
                        after = pos + 1
                    pos = after
                    continue
                if stop == "exhausted":
                    soft = False  # no node satisfies them any more, for any of the rest
                continue
            attempt, attempt_relaxed = relaxed_req, relaxed if req.has_soft_rules else ()
            pos, stop = self._run(runs, key, attempt, attempt_relaxed, tasks, pos, total,
                                  result, defer=False, until=revived if revivable else None)
            if stop == "exhausted":
                break
            soft = stop == "revived"
        if pos < total:
            cycle = PlacementCycle(self.cluster,
                                   [Identity(tasks[pos].spec.name, tasks[pos].id, attempt)])
            placed = len(result.assignments) - before
            note = f"placed {placed:,} of {total:,}; for the rest" if placed else ""
            why = explain(attempt, self.cluster, self.pipeline.filters, cycle,
                          relaxed=attempt_relaxed, note=note)
            result.refusals.extend(Refusal(t.id, why) for t in tasks[pos:])

    def _refuse_one(self, req: PlacementRequest, relaxed: tuple[str, ...], task: Task,
                    result: PlacementResult) -> None:
        """Refuse one task whose own identity (name, labels) a running container bars."""
        cycle = PlacementCycle(self.cluster, [Identity(task.spec.name, task.id, req)])
        why = explain(req, self.cluster, self.pipeline.filters, cycle, relaxed=relaxed)
        result.refusals.append(Refusal(task.id, why))

    def _run(self, runs: ClassRuns, key: bytes, req: PlacementRequest,
             relaxed: tuple[str, ...], tasks: list[Task], pos: int, end: int,
             result: PlacementResult, *, defer: bool, until: Until = None,
             ) -> tuple[int, Stop]:
        """Place tasks[pos:end] while nodes remain.

        Returns where it stopped and why: "done" (reached end), "exhausted" (no node is left
        for this class), "guarded" (only tasks[pos] is barred, and ``defer`` asked to hand
        it back instead of refusing it here), or "revived" (``until`` said so of the node the
        task before pos joined).
        """
        if req.spread:
            if self.pipeline.scorer.ordered and self.options.sample == "all":
                return run_spread(self, runs, req, relaxed, tasks, pos, end, result,
                                  defer=defer, until=until)
            return run_spread_scan(self, req, relaxed, tasks, pos, end, result, defer=defer,
                                   until=until)
        if not self.pipeline.scorer.ordered:
            return self._run_sampled(req, relaxed, tasks, pos, end, result, k=1,
                                     shuffle_each=True, defer=defer, until=until)
        sample = self.options.sample
        if sample != "all":
            n = len(self.cluster.nodes)
            k = max(2, math.ceil(math.log2(max(n, 2)))) if sample == "log2" \
                else max(1, math.ceil(float(sample) * n))
            return self._run_sampled(req, relaxed, tasks, pos, end, result, k=k,
                                     shuffle_each=False, defer=defer, until=until)
        return run_heap(self, runs, key, req, relaxed, tasks, pos, end, result, defer=defer,
                        until=until)

    def _feasible(self, req: PlacementRequest, node: NodeSnapshot, cycle: PlacementCycle,
                  chain: tuple[Filter, ...]) -> bool:
        # A plain loop, not all(<genexpr>): this runs once per placement and the generator
        # costs a measurable share of the hot path.
        for f in chain:  # noqa: SIM110
            if f.check(req, node, cycle) is not None:
                return False
        return True

    def _guarded(self, req: PlacementRequest, node: NodeSnapshot, cycle: PlacementCycle) -> bool:
        """True when a running container's anti-affinity bars this task from the node."""
        return any(f.check(req, node, cycle) is not None for f in self._identity)

    def _heap_for(self, key: bytes, req: PlacementRequest, relaxed: bool, cycle: PlacementCycle,
                  chain: tuple[Filter, ...]) -> list[HeapEntry]:
        # A node refused for want of a match (affinity ==, links) may get one later from another
        # class; such requests rebuild their heap each time instead of trusting a cached one.
        cacheable = not req.deps and not any(not r.negate for r in req.affinities)
        cache_key = (key, relaxed)
        if cacheable:
            heap = self._heaps.get(cache_key)
            if heap is not None:
                self._heaps.move_to_end(cache_key)
                return heap
        heap = self._entries(req, self._candidates(req, cycle), cycle, chain)
        heapq.heapify(heap)
        if cacheable:
            self._heaps[cache_key] = heap
            while len(self._heaps) > self.options.cached_classes:
                self._heaps.popitem(last=False)
        return heap

    def _walk(self, runs: ClassRuns, key: bytes, req: PlacementRequest, relaxed: bool,
              cycle: PlacementCycle, chain: tuple[Filter, ...], tasks: int) -> Walk | None:
        """A walk of the shared load order for this run, or None to use a heap of its own
        (no load order, a short run, or a heap cached for the class by an earlier call)."""
        order = self._order
        if order is None or not self._walks_pay(req, cycle, tasks) or (key, relaxed) in self._heaps:
            return None
        runs.refresh_order(order)
        return order.walk(req, self._static.selector(req, cycle),
                          self._entries_maker(req, cycle, chain))

    def _walks_pay(self, req: PlacementRequest, cycle: PlacementCycle, tasks: int) -> bool:
        return self._order is not None and tasks >= WALK_MIN_TASKS and \
            len(self._static.get(req, cycle)) >= WALK_CANDIDATES_PER_TASK * tasks and \
            self._image_holders(req) is None

    def _candidates(self, req: PlacementRequest, cycle: PlacementCycle) -> list[NodeSnapshot]:
        """The static candidates, or of them only those holding the image a positive image
        affinity wants (no other node passes it)."""
        static = self._static.get(req, cycle)
        held = self._image_holders(req)
        if held is None:
            return static
        member, nodes = self._static.selector(req, cycle), self.cluster.nodes
        return [nodes[i] for i in sorted(held) if member[i]]

    def _image_holders(self, req: PlacementRequest) -> set[int] | None:
        """For a request with a positive literal image affinity (``image==X``, soft or hard,
        or ``container.image==X``): the nodes that hold X as that rule reads it (a container
        of it runs there; or, for ``image==``, stored there too), else None. A soft rule's
        first attempt then meets those nodes instead of every candidate."""
        for rule in req.affinities:
            m = rule.matcher
            if rule.negate or rule.key not in IMAGE_KEYS or m.kind is not MatchKind.EXACT or \
                    m.ignore_case:
                continue
            held = set(self.cluster.running_image(m.pattern))
            if rule.key == IMAGE_KEY:
                held.update(self.cluster.storing_image(m.pattern))
            return held
        return None

    def _fused(self, chain: tuple[Filter, ...]) -> tuple[Check, ...] | None:
        """The checks left beside the resource filter when ``spread_entries`` can make this
        chain's entries (shoal's spread weighting), else None."""
        if not isinstance(self.pipeline.scorer, SpreadScorer) or \
                not any(isinstance(f, ResourceFilter) for f in chain):
            return None
        return tuple(f.check for f in chain if not isinstance(f, ResourceFilter))

    def _entries(self, req: PlacementRequest, nodes: Iterable[NodeSnapshot],
                 cycle: PlacementCycle, chain: tuple[Filter, ...]) -> list[HeapEntry]:
        """The heap entry of every node of ``nodes`` that can take the request now."""
        return self._entries_maker(req, cycle, chain)(nodes)

    def _entries_maker(self, req: PlacementRequest, cycle: PlacementCycle,
                       chain: tuple[Filter, ...],
                       ) -> Callable[[Iterable[NodeSnapshot]], list[HeapEntry]]:
        """``_entries`` for this request, over any nodes (a walk's, slice by slice)."""
        others = self._fused(chain)
        rank = self._rank
        if others is not None:
            fused = spread_entries.entries
            return lambda nodes: fused(req, nodes, rank, cycle, others)
        make = self._entry_maker(req, cycle, chain)
        return lambda nodes: [e for e in map(make, nodes) if e is not None]

    def _entry_maker(self, req: PlacementRequest, cycle: PlacementCycle,
                     chain: tuple[Filter, ...]) -> Callable[[NodeSnapshot], HeapEntry | None]:
        """A node's heap entry for this request, or None when it cannot take it now."""
        others = self._fused(chain)
        if others is not None:
            return spread_entries.entry_maker(req, self._rank, cycle, others)
        score, rank = self.pipeline.scorer.key, self._rank
        checks = tuple(f.check for f in chain)

        def entry(node: NodeSnapshot) -> HeapEntry | None:
            for check in checks:  # _feasible without a call: this runs for every node met
                if check(req, node, cycle) is not None:
                    return None
            # lacks_image, inlined
            return (score(req, node), 0 if req.image in node.stored_images else 1,
                    rank[node.index], node.index, node.version)
        return entry

    def _run_sampled(self, req: PlacementRequest, relaxed: tuple[str, ...], tasks: list[Task],
                     pos: int, end: int, result: PlacementResult, *, k: int,
                     shuffle_each: bool, defer: bool, until: Until = None,
                     ) -> tuple[int, Stop]:
        """Best of the first k feasible nodes in a shuffled order (k=1, reshuffled: random)."""
        chain = tuple(f for f in self._dynamic if f.relevant(req))
        cycle = PlacementCycle(self.cluster, [Identity(tasks[pos].spec.name, tasks[pos].id, req)])
        cands = list(self._static.get(req, cycle))
        rng, score, rank = self._rng, self.pipeline.scorer.key, self._rank
        rng.shuffle(cands)
        cursor = 0
        while pos < end:
            task = tasks[pos]
            cycle.identities = [Identity(task.spec.name, task.id, req)]
            found: list[NodeSnapshot] = []
            scanned = 0
            while cands and len(found) < k and scanned < len(cands):
                i = rng.randrange(len(cands)) if shuffle_each else cursor % len(cands)
                node = cands[i]
                if not self._feasible(req, node, cycle, chain):
                    # Within a class, what stops fitting never fits again: drop it for good.
                    cands[i] = cands[-1]
                    cands.pop()
                    continue
                scanned += 1
                cursor = i + 1
                if node.guards and self._guarded(req, node, cycle):
                    if shuffle_each:
                        # Random draws may hit it forever: look at the rest in order instead.
                        shuffle_each = False
                        cursor = i + 1
                    continue
                found.append(node)
            if not found:
                if not cands:
                    return pos, "exhausted"
                if defer:  # only guards stood in the way, and only of this task
                    return pos, "guarded"
                self._refuse_one(req, relaxed, task, result)
                pos += 1
                continue
            chosen = min(found, key=lambda n: (score(req, n), lacks_image(req, n),
                                               rank[n.index]))
            unmet = self._unmet(req, chosen) if relaxed else ()
            self.cluster.place(chosen, PlacedContainer(task.id, task.spec.name, req))
            result.assignments.append(Assignment(task.id, chosen.id, unmet))
            pos += 1
            if until is not None and until(chosen):
                return pos, "revived"
        return pos, "done"

    def _unmet(self, relaxed_req: PlacementRequest, node: NodeSnapshot) -> tuple[str, ...]:
        """The dropped soft rules this node does not satisfy: what the decision relaxed."""
        original = relaxed_req.original or relaxed_req
        hit = self._singles.get(id(original))
        plan = hit[1] if hit is not None and hit[0] is original else self._soft_plan(original)
        out: list[str] = []
        cycle = self._bare_cycle
        for text, single, chain, holders in plan:
            if holders is not None:
                if not holders[node.index]:
                    out.append(text)
                continue
            for f in chain:
                if f.check(single, node, cycle) is not None:
                    out.append(text)
                    break
        return tuple(out)

    def _soft_plan(self, req: PlacementRequest) -> tuple[SoftCheck, ...]:
        """How ``_unmet`` judges each soft rule of ``req`` alone, remembered (relaxed runs
        ask once per placement): the rule's text, ``_only_rule`` and the filters that judge
        it; for a constraint, also the nodes it holds on, one byte per node: a node asked
        about passed the request's other static filters already, so the rule's own verdict
        is the whole answer, and the static cache has it."""
        if len(self._singles) >= MAX_COMPILED:
            self._singles.clear()
        plan: list[SoftCheck] = []
        for rule in req.soft:
            single = _only_rule(req, rule)
            # By identity: rules compare by value, and a constraint and an affinity may read
            # alike.
            constraint = any(rule is r for r in req.constraints)
            # The node asked about took the request with this rule's siblings dropped, so it
            # passed resources and the per-node cap: only the filters that read rules judge.
            passed = (ResourceFilter, MaxPerNodeFilter)  # a tuple: mypyc loses a union here
            chain = tuple(f for f in (self.pipeline.static if constraint else self._dynamic)
                          if f.relevant(single) and not isinstance(f, passed))
            holders = self._static.holders_of(rule) if constraint else None
            plan.append((rule.text, single, chain, holders))
        self._singles[id(req)] = (req, tuple(plan))
        return tuple(plan)

    # --- one unit of an app ---------------------------------------------------------------
    def _place_unit(self, unit: PlacementRequest, identities: list[Identity],
                    ) -> tuple[NodeSnapshot | None, tuple[str, ...], Explanation | None]:
        cycle = PlacementCycle(self.cluster, identities)
        attempts = [(unit, ())] if not unit.has_soft_rules else \
            [(unit, ()), (unit.relax(), _soft_texts(unit))]
        score, rank = self.pipeline.scorer.key, self._rank
        last = unit
        relaxed: tuple[str, ...] = ()
        for req, relaxed in attempts:
            last = req
            if req.conflict:
                break
            chain = tuple(f for f in self.pipeline.dynamic if f.relevant(req))
            fits = [n for n in self._static.get(req, cycle) if self._feasible(req, n, cycle, chain)]
            fits = preferred(req, fits, self.cluster.nodes)
            if fits:
                if self.pipeline.scorer.ordered:
                    node = min(fits, key=lambda n: (score(req, n), lacks_image(req, n),
                                                    rank[n.index]))
                else:
                    node = fits[self._rng.randrange(len(fits))]
                return node, (self._unmet(req, node) if relaxed else ()), None
        why = explain(last, self.cluster, self.pipeline.filters, cycle, relaxed=relaxed)
        return None, (), why


def _only_rule(req: PlacementRequest, rule: Rule) -> PlacementRequest:
    """A copy of ``req`` whose only rule is ``rule`` (to test one soft rule on its own)."""
    return dataclasses.replace(
        req,
        constraints=tuple(r for r in req.constraints if r is rule),
        affinities=tuple(r for r in req.affinities if r is rule),
        deps=(), ports=(), millicpus=0, memory=0, pids=0, count=0,
    )
