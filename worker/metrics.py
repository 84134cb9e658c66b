"""The worker's Prometheus metrics: one ``WorkerMetrics`` per worker, on its own registry.

Events are counted where they happen: container starts, exits and policy restarts in the engine,
image bytes as a fetch receives them, runtime helper calls as their replies arrive. Levels
(containers by status, channel sessions, credit stalls) are read from the worker when scraped,
by a collector over ``WorkerLevels``. Labels take values from small fixed sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from protocol.observed import ContainerStatus

CONTAINER_STATUSES: tuple[str, ...] = get_args(ContainerStatus)
# A runtime helper call is a few syscalls and a fork: a fraction of a millisecond to seconds
# (a create that mounts a large rootfs).
CALL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5, 5.0, 10.0)
# Calls that wait for a process to end: their time is the process's life, not the helper's.
LONG_POLLS = frozenset({"Wait", "WaitExec"})


@dataclass(frozen=True, slots=True)
class WorkerLevels:
    """What the worker is now, as a scrape reads it."""

    containers: Mapping[str, int] = field(default_factory=dict)  # status → count
    channel_sessions: int = 0
    credit_stalls: int = 0


class WorkerMetrics:
    """The metrics of one worker; ``registry`` is what its endpoint serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.container_starts = Counter(
            "shoal_worker_container_starts",
            "Container processes started (by a start verb or a restart policy).", registry=r)
        self.container_exits = Counter(
            "shoal_worker_container_exits",
            "Container processes that ended, by outcome: success (exit 0), failure (another "
            "code) or oom_killed.", ["outcome"], registry=r)
        self.container_restarts = Counter(
            "shoal_worker_container_restarts",
            "Containers started again by their restart policy after an exit.", registry=r)
        self.image_fetch_bytes = Counter(
            "shoal_worker_image_fetch_bytes",
            "Image bytes (layers, configs, manifests) received from a scheduler's store.",
            registry=r)
        self.runtime_call_seconds = Histogram(
            "shoal_worker_runtime_call_seconds",
            "Time from a request to the runtime helper to its reply, by operation (waits for "
            "a process's end are not counted).", ["op"], buckets=CALL_BUCKETS, registry=r)
        for outcome in ("success", "failure", "oom_killed"):
            self.container_exits.labels(outcome)  # every outcome shows, at 0 until it happens

    def exited(self, exit_code: int, oom_killed: bool) -> None:
        outcome = "oom_killed" if oom_killed else "success" if exit_code == 0 else "failure"
        self.container_exits.labels(outcome).inc()

    def fetched(self, size: int) -> None:
        self.image_fetch_bytes.inc(size)

    def runtime_call(self, op: str, seconds: float) -> None:
        if op not in LONG_POLLS:
            self.runtime_call_seconds.labels(op).observe(seconds)

    def watch(self, levels: Callable[[], WorkerLevels]) -> None:
        """Read ``levels()`` at every scrape (once per worker)."""
        self.registry.register(_LevelsCollector(levels))


class _LevelsCollector:
    def __init__(self, levels: Callable[[], WorkerLevels]) -> None:
        self._levels = levels

    def collect(self) -> Iterator[Metric]:
        now = self._levels()
        containers = GaugeMetricFamily("shoal_worker_containers",
                                       "Containers on this worker by status.", labels=["status"])
        for status in CONTAINER_STATUSES:
            containers.add_metric([status], now.containers.get(status, 0))
        yield containers
        yield GaugeMetricFamily("shoal_worker_channel_sessions",
                                "Channel sessions on this worker's listener (clients, "
                                "schedulers).", value=now.channel_sessions)
        yield CounterMetricFamily("shoal_worker_credit_stalls",
                                  "Sends on this worker's listener that waited for the peer's "
                                  "credit (a slow reader).", value=now.credit_stalls)
