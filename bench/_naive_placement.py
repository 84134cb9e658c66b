"""The naive reference scheduler: every task runs every filter on every node (Swarm classic).

No node classes, no heap, no caches: per task it filters the whole cluster, then takes the best
score. It shares the filters and scorers with the engine, and breaks ties with the same seeded
node ranks, so on the same input the two must choose the same nodes (tests hold the engine to
that), and the benchmark can set the engine's speed beside it honestly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from scheduler.placement.explain import explain
from scheduler.placement.filters import Identity, PlacementCycle
from scheduler.placement.pipeline import Strategy, build_pipeline
from scheduler.placement.preferences import preferred
from scheduler.placement.request import PlacementRequest, compile_spec
from scheduler.placement.results import Assignment, PlacementResult, Refusal, Task
from scheduler.placement.snapshot import ClusterSnapshot, PlacedContainer


class NaiveScheduler:
    def __init__(self, cluster: ClusterSnapshot, *, strategy: Strategy = "spread",
                 seed: int = 0) -> None:
        self.cluster = cluster
        self.pipeline = build_pipeline(strategy)
        rng = random.Random(seed)
        ranks = list(range(len(cluster.nodes)))
        rng.shuffle(ranks)  # the same draw as PlacementEngine, so ties break alike
        self._rank = ranks
        self._rng = rng

    def place_batch(self, tasks: Sequence[Task]) -> PlacementResult:
        result = PlacementResult()
        compiled: dict[int, PlacementRequest] = {}
        for task in tasks:
            req = compiled.get(id(task.spec))
            if req is None:
                req = compiled[id(task.spec)] = compile_spec(task.spec)
            self._place_one(task, req, result)
        return result

    def _place_one(self, task: Task, req: PlacementRequest, result: PlacementResult) -> None:
        cycle = PlacementCycle(self.cluster, [Identity(task.spec.name, task.id, req)])
        attempts = [req, req.relax()] if req.has_soft_rules else [req]
        filters = self.pipeline.filters
        score = self.pipeline.scorer.key
        for attempt in attempts:
            if attempt.conflict:
                break
            fits = [n for n in self.cluster.nodes
                    if all(f.check(attempt, n, cycle) is None for f in filters)]
            if not fits:
                continue
            fits = preferred(attempt, fits, self.cluster.nodes)  # the emptiest branches
            if self.pipeline.scorer.ordered:
                node = min(fits, key=lambda n: (score(attempt, n), self._rank[n.index]))
            else:
                node = fits[self._rng.randrange(len(fits))]
            relaxed = tuple(r.text for r in req.soft) if attempt is not req else ()
            self.cluster.place(node, PlacedContainer(task.id, task.spec.name, req))
            result.assignments.append(Assignment(task.id, node.id, relaxed))
            return
        last = attempts[-1]
        why = explain(last, self.cluster, filters, cycle,
                      relaxed=tuple(r.text for r in req.soft) if last is not req else ())
        result.refusals.append(Refusal(task.id, why))
