"""What a class's runs keep between calls while one class of identical tasks is placed.

A class alternates between attempts: with its soft rules, then without them (relaxed), and,
when a relaxed positive soft affinity comes to hold on the node a task joined, with them again,
one task at a time. Each run used to build its heaps (or walks) from every candidate and drop
them on return, so a class that alternated paid a pass over the cluster per task. A run now
leaves its state here and picks it up on its next call: its heaps stay valid, because between
two of its calls only the class's other attempt placed, on nodes it learns from the
assignments made since (``placed_since``) and offers again; everything else about the cluster
is as it left it.

The load order is refreshed once per class (``refresh_order``): a refresh re-sorts the orders
that live walks are stepping through. Within a class nodes only gain containers, so an entry
not refreshed understates its node's load: a lower bound still, and a walk stays exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from scheduler.placement.results import PlacementResult

if TYPE_CHECKING:
    from scheduler.placement.load_order import HeapEntry, LoadOrder
    from scheduler.placement.request import PlacementRequest
    from scheduler.placement.snapshot import ClusterSnapshot, NodeSnapshot


class RunState(Protocol):
    """What every attempt's state (heap_runs.HeapRun, preference_runs.SpreadRun) offers."""

    @property
    def member(self) -> bytes:
        """The attempt's static candidates, one byte per node index."""

    @property
    def make(self) -> Callable[[NodeSnapshot], HeapEntry | None]:
        """A node's entry, None if it cannot take the attempt's request."""


@dataclass(slots=True)
class ClassRuns:
    """The states of one class's attempts (keyed by the attempt's request object)."""

    cluster: ClusterSnapshot
    result: PlacementResult
    total: int  # tasks in the class: a run's state serves all that remain, not one call
    start: int  # the batch's assignments before the class's first
    states: dict[int, RunState] = field(default_factory=dict)
    _refreshed: bool = False

    def refresh_order(self, order: LoadOrder) -> None:
        """Refresh the shared load order, once per class (see the module docstring)."""
        if not self._refreshed:
            order.refresh()
            self._refreshed = True

    def remaining(self) -> int:
        """Tasks of the class not placed yet (refused ones included): what a state serves."""
        return self.total - (len(self.result.assignments) - self.start)

    def mark(self) -> int:
        """Where the class's assignments stand now: what a run has seen when it returns."""
        return len(self.result.assignments)

    def could_take(self, req: PlacementRequest, node: NodeSnapshot) -> bool:
        """Whether the attempt ``req`` could place its next task on ``node`` (False only when
        its state knows the node cannot take it): for an attempt that ran out of nodes, when
        ``node`` is the only one changed since."""
        state = self.states.get(id(req))
        if state is None:
            return True
        return bool(state.member[node.index]) and state.make(node) is not None

    def placed_since(self, seen: int) -> list[NodeSnapshot]:
        """The node of each task the class placed since ``mark`` returned ``seen``."""
        by_id = self.cluster.by_id
        return [by_id[a.node_id] for a in self.result.assignments[seen:]]
