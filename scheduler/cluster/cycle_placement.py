"""The placement step of a leader's cycle: the cycle's pending containers placed in one batch
of the placement engine, and the engine kept between cycles.

The engine holds a view of the cluster (its nodes and what they run) that it updates with its
own choices; the leader keeps it while the cluster changes only through what it placed and
released, and drops it (``invalidate``) when its view may be wrong: a node changed, a commit
failed or was partial, a placement was undone. The next cycle with something to place builds
a new one from the cache.
"""

from __future__ import annotations

import time

import msgspec
import structlog

from protocol.errors import InvalidArgument
from scheduler.cluster import views
from scheduler.cluster.cycle import LeaderCycle
from scheduler.cluster.metrics import SchedulerMetrics
from scheduler.cluster.overlay_endpoints import assignment
from scheduler.cluster.work import CreateTogether
from scheduler.placement import EngineOptions, PlacementEngine, Strategy, Task

log = structlog.get_logger("shoal.scheduler")
replace = msgspec.structs.replace


class CyclePlacement:
    """Places each cycle's pending containers; keeps the engine for the next cycle."""

    def __init__(self, strategy: Strategy, seed: int, metrics: SchedulerMetrics) -> None:
        self.strategy: Strategy = strategy
        self.seed = seed
        self.metrics = metrics
        self._engine: PlacementEngine | None = None

    def invalidate(self) -> None:
        """The engine's view may be wrong: the next placement builds it again."""
        self._engine = None

    def place(self, cycle: LeaderCycle) -> list[str]:
        """Place the pending containers; the ids assigned (to commit)."""
        if cycle.nodes_changed:
            self._engine = None
        elif self._engine is not None:
            for cid in cycle.released:
                self._engine.release(cid)
        table = cycle.containers
        todo = [(cid, rec) for cid in cycle.place
                if (rec := table.get(cid)) is not None and rec.schedule_state == "pending"
                and rec.desired != "removed"]
        if not todo:
            return []
        engine = self._engine
        if engine is None:
            snapshot = views.snapshot(
                ((nid, n) for nid in cycle.nodes.ids() if (n := cycle.nodes.get(nid))),
                ((cid, rec) for cid in table.ids() if (rec := table.get(cid))))
            engine = self._engine = PlacementEngine(
                snapshot, EngineOptions(strategy=self.strategy, seed=self.seed))
        began = time.monotonic()
        # Containers created together are placed as one all-or-nothing app (co-located where
        # they link to or take volumes from each other); the rest in one batch.
        together: dict[int, CreateTogether] = {}
        for cid, _ in todo:
            owner = cycle.place.get(cid)
            if isinstance(owner, CreateTogether):
                together[id(owner)] = owner
        grouped = {cid for owner in together.values() for cid in owner.ids}
        try:
            result = engine.place_batch([Task(cid, rec.spec) for cid, rec in todo
                                         if cid not in grouped])
            for owner in together.values():
                result.extend(engine.place_app(owner.as_app(), owner.ids))
        except InvalidArgument as exc:  # a recorded spec that no longer validates
            log.error("placement refused a recorded spec", error=str(exc))
            self._engine = None
            return []
        self.metrics.placement_batch_seconds.observe(time.monotonic() - began)
        self.metrics.placement_batch_containers.observe(len(todo))
        if result.refusals:
            self.metrics.placement_refusals.inc(len(result.refusals))
        records = dict(todo)
        for a in result.assignments:
            record = records[a.task_id]
            text = f"{self.strategy}: node {a.node_id}"
            if a.relaxed:
                text += f"; soft rules dropped: {', '.join(a.relaxed)}"
            placed = replace(record, schedule_state="assigned", node_id=a.node_id,
                             generation=record.generation + 1, placement=text)
            cycle.put_container(a.task_id, placed)
            if placed.desired == "running":
                cycle.send(a.node_id, assignment(a.task_id, placed), ("containers", a.task_id))
        for refusal in result.refusals:
            owner = cycle.place.get(refusal.task_id)
            if owner is not None:
                owner.refused(cycle, refusal.task_id, refusal.explanation)
            else:
                cycle.keep_pending(refusal.task_id, refusal.explanation)
        # An all-or-nothing submission undoes placements it already got: free them again.
        for a in result.assignments:
            if a.task_id in cycle.released:
                engine.release(a.task_id)
        return [a.task_id for a in result.assignments]
