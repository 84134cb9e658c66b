"""Measured runs for bench/placement.py: engine and naive on a workload, timed and checked."""

from __future__ import annotations

import gc
import hashlib
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench._naive_placement import NaiveScheduler
from protocol.observed import ContainerInfo, NodeInfo
from scheduler.placement import (
    ClusterSnapshot,
    EngineOptions,
    PlacementEngine,
    PlacementResult,
    Task,
    check_placement,
)
from scheduler.placement.pipeline import Strategy


@dataclass(slots=True)
class Run:
    """One scheduler on one workload."""

    name: str
    scheduler: str
    nodes: int
    tasks: int
    placed: int
    refused: int
    seconds: float
    latencies: list[float]  # seconds per decision (a job, or a single task)
    per: str  # what one decision is: "job" or "task"
    violations: int = -1  # -1: not checked
    result: PlacementResult = field(default_factory=PlacementResult)
    snapshot: ClusterSnapshot | None = None

    @property
    def rate(self) -> float:
        return self.placed / self.seconds if self.seconds else 0.0

    @property
    def digest(self) -> str:
        """A hash of every answer in order (task, node, relaxed rules; task, refusal text):
        equal before and after a change that must not change what is chosen."""
        return answers_digest(self.result)

    def pct(self, q: float) -> float:
        """The q-quantile of decision latency, in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0

    def row(self) -> list[object]:
        return [self.name, self.scheduler, self.nodes, self.tasks, self.refused,
                round(self.rate), round(self.pct(0.5) * 1000), round(self.pct(0.99) * 1000),
                self.per,
                "-" if self.violations < 0 else self.violations]


def answers_digest(result: PlacementResult) -> str:
    """``Run.digest`` of any result: sha256 of its assignments and refusals, in order."""
    h = hashlib.sha256()
    for a in result.assignments:
        h.update(f"{a.task_id}\t{a.node_id}\t{'|'.join(a.relaxed)}\n".encode())
    for r in result.refusals:
        h.update(f"{r.task_id}\t{r.explanation}\n".encode())
    return h.hexdigest()[:16]


def run_engine(name: str, nodes: list[NodeInfo], jobs: Sequence[Sequence[Task]], *,
               existing: Sequence[ContainerInfo] = (), options: EngineOptions | None = None,
               check: bool = True, per: str = "job") -> Run:
    """Each entry of ``jobs`` is one decision (one place_batch call)."""
    snapshot = ClusterSnapshot.build(nodes, existing)
    engine = PlacementEngine(snapshot, options)
    result = PlacementResult()
    latencies: list[float] = []
    gc.collect()
    gc.disable()  # a million live objects: collector pauses would dominate the figures
    try:
        start = time.perf_counter()
        for job in jobs:
            t0 = time.perf_counter()
            result.extend(engine.place_batch(job))
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - start
    finally:
        gc.enable()
    tasks = sum(len(j) for j in jobs)
    run = Run(name, _label(options), len(nodes), tasks, len(result.assignments),
              len(result.refusals), seconds, latencies, per, result=result, snapshot=snapshot)
    if check:
        flat = [t for j in jobs for t in j]
        run.violations = len(check_placement(nodes, existing, flat, result))
    return run


def run_naive(name: str, nodes: list[NodeInfo], tasks: Sequence[Task], *,
              existing: Sequence[ContainerInfo] = (), strategy: Strategy = "spread",
              seed: int = 0) -> Run:
    """Every task is one decision over every node."""
    snapshot = ClusterSnapshot.build(nodes, existing)
    naive = NaiveScheduler(snapshot, strategy=strategy, seed=seed)
    result = PlacementResult()
    latencies: list[float] = []
    start = time.perf_counter()
    for task in tasks:
        t0 = time.perf_counter()
        result.extend(naive.place_batch([task]))
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    label = "naive" if strategy == "spread" else f"naive {strategy}"
    run = Run(name, label, len(nodes), len(tasks), len(result.assignments),
              len(result.refusals), seconds, latencies, "task", result=result,
              snapshot=snapshot)
    run.violations = len(check_placement(nodes, existing, tasks, result))
    return run


def _label(options: EngineOptions | None) -> str:
    o = options or EngineOptions()
    s: str = "engine" if o.strategy == "spread" else o.strategy
    if o.sample != "all":
        s += " log2" if o.sample == "log2" else f" {float(o.sample):.0%}"
    if o.order != "arrival":
        s += " ffd"
    if o.weighting == "swarm":
        s += " swarm"
    return s


def load_cv(snapshot: ClusterSnapshot) -> float:
    """Coefficient of variation of per-node load ((cpu% + mem%) / 2) over schedulable nodes."""
    loads = [
        (n.used_cpu / n.cap_cpu + n.used_mem / n.cap_mem) / 2
        for n in snapshot.nodes if n.ready and n.cap_cpu and n.cap_mem
    ]
    mean = statistics.fmean(loads) if loads else 0.0
    return statistics.pstdev(loads) / mean if mean else 0.0


def count_cv(snapshot: ClusterSnapshot) -> float:
    """Coefficient of variation of the number of containers per schedulable node."""
    counts = [len(n.containers) for n in snapshot.nodes if n.ready]
    mean = statistics.fmean(counts) if counts else 0.0
    return statistics.pstdev(counts) / mean if mean else 0.0


def nodes_used(snapshot: ClusterSnapshot) -> int:
    return sum(1 for n in snapshot.nodes if n.containers)


def stranded(snapshot: ClusterSnapshot, min_cpu: int, min_mem: int) -> tuple[float, float]:
    """Share of the used nodes' cpu (memory) left free where the other resource is too short
    for the smallest task: capacity that can never be used by this workload."""
    used = [n for n in snapshot.nodes if n.containers]
    cap_cpu = sum(n.cap_cpu for n in used) or 1
    cap_mem = sum(n.cap_mem for n in used) or 1
    cpu = sum(n.cap_cpu - n.used_cpu for n in used if n.cap_mem - n.used_mem < min_mem)
    mem = sum(n.cap_mem - n.used_mem for n in used if n.cap_cpu - n.used_cpu < min_cpu)
    return cpu / cap_cpu, mem / cap_mem
