"""The scheduler's Prometheus metrics: one ``SchedulerMetrics`` per daemon, on its own registry.

Events (placements, commits, refusals) are counted and timed where they happen, in the leader's
cycle. Levels (containers by schedule state, nodes by status, sessions, leadership, credit
stalls) are read from the daemon when scraped, by a collector over ``SchedulerLevels``: they
never drift from the cache they describe and cost nothing between scrapes. Labels take values
from small fixed sets (states, statuses, request kinds, error codes), never ids or names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from protocol.observed import NodeStatus, ScheduleState

# Seconds: from a fraction of a millisecond (a small batch, one commit on a local etcd) to the
# tens of seconds a request waits behind a slow etcd or a huge batch.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000)
SCHEDULE_STATES: tuple[str, ...] = get_args(ScheduleState)
NODE_STATUSES: tuple[str, ...] = get_args(NodeStatus)


@dataclass(frozen=True, slots=True)
class SchedulerLevels:
    """What the daemon is now, as a scrape reads it. A standby holds no cluster cache: its
    ``containers`` and ``nodes`` are empty, and the leader's figures are the cluster's."""

    leader: bool
    containers: Mapping[str, int] = field(default_factory=dict)  # schedule state → count
    nodes: Mapping[str, int] = field(default_factory=dict)  # status → count
    worker_sessions: int = 0
    channel_sessions: int = 0
    credit_stalls: int = 0


class SchedulerMetrics:
    """The metrics of one scheduler daemon; ``registry`` is what its endpoint serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.placement_batch_seconds = Histogram(
            "shoal_scheduler_placement_batch_seconds",
            "Time the placement engine took for one batch (every pending container of a cycle).",
            buckets=LATENCY_BUCKETS, registry=r)
        self.placement_batch_containers = Histogram(
            "shoal_scheduler_placement_batch_containers",
            "Containers in one placement batch.", buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.placement_seconds = Histogram(
            "shoal_scheduler_placement_seconds",
            "Per container placed: from its request reaching the leader (or the reconciler "
            "finding it pending) to its assignment committed.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.plan_commit_seconds = Histogram(
            "shoal_scheduler_plan_commit_seconds",
            "Time to commit one cycle's plan to etcd (all its transactions).",
            buckets=LATENCY_BUCKETS, registry=r)
        self.placement_refusals = Counter(
            "shoal_scheduler_placement_refusals",
            "Containers placement found no node for (the request is refused, or they wait).",
            registry=r)
        self.refused_requests = Counter(
            "shoal_scheduler_refused_requests",
            "Requests the leader refused, by kind of request and error code.",
            ["request", "code"], registry=r)

    def watch(self, levels: Callable[[], SchedulerLevels]) -> None:
        """Read ``levels()`` at every scrape (once per daemon)."""
        self.registry.register(_LevelsCollector(levels))


class _LevelsCollector:
    def __init__(self, levels: Callable[[], SchedulerLevels]) -> None:
        self._levels = levels

    def collect(self) -> Iterator[Metric]:
        now = self._levels()
        yield GaugeMetricFamily("shoal_scheduler_leader",
                                "1 while this scheduler leads the cluster, 0 on a standby.",
                                value=int(now.leader))
        containers = GaugeMetricFamily(
            "shoal_scheduler_containers",
            "Containers by schedule state, in the leader's cache (none on a standby).",
            labels=["state"])
        nodes = GaugeMetricFamily(
            "shoal_scheduler_nodes", "Nodes by status, in the leader's cache (none on a standby).",
            labels=["status"])
        if now.leader:
            for state in SCHEDULE_STATES:
                containers.add_metric([state], now.containers.get(state, 0))
            for status in NODE_STATUSES:
                nodes.add_metric([status], now.nodes.get(status, 0))
        yield containers
        yield nodes
        yield GaugeMetricFamily("shoal_scheduler_worker_sessions",
                                "Workers joined to this scheduler while it leads.",
                                value=now.worker_sessions)
        yield GaugeMetricFamily("shoal_scheduler_channel_sessions",
                                "Channel sessions on this scheduler's listener (workers, "
                                "clients, other schedulers).", value=now.channel_sessions)
        yield CounterMetricFamily("shoal_scheduler_credit_stalls",
                                  "Sends on this scheduler's listener that waited for the "
                                  "peer's credit (a slow reader).", value=now.credit_stalls)
