"""The reconciler: desired state + observed state → the actions that close the gap. Pure.

Inputs are the store's records (what was asked, where it was placed, under which generation),
the nodes with the time each was last heard from (``now`` and ``last_seen`` on the scheduler's
own monotonic clock), and what each node reports running. Outputs
are decisions only; the scheduler's shell writes them to etcd as a plan and sends the stops.

Rules:
- a pending container is placed;
- a ready node silent past the timeout goes down; its live containers are rescheduled (back to
  pending under a new generation) when their restart policy asks for restarts, else marked
  orphaned, visibly; an exclusive one too, as the node timeout is longer than the delay after
  which its cut-off worker has killed it (``scheduler.fencing``);
- a node drained by an operator gives up its containers that may move (restart policy asks for
  restarts): they are rescheduled elsewhere, and the old copies stopped once the new ones are
  assigned; the others keep running there, and so do exclusive ones, which would run twice
  for that while;
- an orphaned container whose node comes back takes the state that node reports (exited with
  its code, or running still): the node's word ends the doubt that orphaned it;
- a node that reports a container it no longer owns (rescheduled elsewhere, removed, or an older
  generation) is told to stop it: a container never runs twice;
- a container wanted removed is deleted once no node reports it, after stops where one does;
- healthy containers are never moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from protocol.observed import ContainerStatus, ScheduleState
from scheduler.store.records import ContainerRecord, NodeRecord

LIVE: frozenset[ScheduleState] = frozenset({"assigned", "accepted", "starting", "running"})
RESCHEDULE_POLICIES = frozenset({"always", "unless-stopped", "on-failure"})
TERMINAL_STATUSES: frozenset[ContainerStatus] = frozenset({"exited", "dead"})


@dataclass(frozen=True, slots=True)
class Report:
    """A node's word about one container it holds."""

    node_id: str
    container_id: str
    generation: int
    status: ContainerStatus


@dataclass(frozen=True, slots=True)
class Reschedule:
    container_id: str
    from_node: str
    generation: int  # the new generation the container is pending under


@dataclass(frozen=True, slots=True)
class Orphan:
    container_id: str
    node_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopStale:
    """Tell ``node_id`` to stop and remove its copy of ``container_id``."""

    node_id: str
    container_id: str
    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class Observe:
    """A report moves the container's scheduler view forward."""

    container_id: str
    schedule_state: ScheduleState


@dataclass(slots=True)
class Actions:
    place: list[str] = field(default_factory=list)
    nodes_down: list[str] = field(default_factory=list)
    reschedule: list[Reschedule] = field(default_factory=list)
    orphan: list[Orphan] = field(default_factory=list)
    stop: list[StopStale] = field(default_factory=list)
    observe: list[Observe] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any((self.place, self.nodes_down, self.reschedule, self.orphan, self.stop,
                        self.observe, self.delete))


# Forward-only order of the scheduler's view; a report never moves a container backwards.
_SEQUENCE: tuple[ScheduleState, ...] = (
    "pending", "assigned", "accepted", "starting", "running", "exited", "failed", "rejected",
    "orphaned", "removed")
_ORDER: dict[ScheduleState, int] = {state: rank for rank, state in enumerate(_SEQUENCE)}
_FROM_STATUS: dict[str, ScheduleState] = {
    "created": "accepted", "running": "running", "restarting": "running", "paused": "running",
    "exited": "exited", "dead": "failed", "removing": "exited",
}

NodeStatusKind = Literal["ready", "down"]


def reconcile(
    containers: Mapping[str, ContainerRecord],
    nodes: Mapping[str, NodeRecord],
    reports: Iterable[Report],
    *,
    now: float,
    node_timeout: float,
) -> Actions:
    """Decide what to do now. Deterministic: the same inputs give the same actions in order."""
    actions = Actions()
    down: set[str] = set()
    draining = {node_id for node_id, node in nodes.items()
                if node.info.availability == "drain"}
    for node_id in sorted(nodes):
        node = nodes[node_id]
        if node.info.status == "down":
            down.add(node_id)
        elif node.info.status == "ready" and now - node.last_seen > node_timeout:
            actions.nodes_down.append(node_id)
            down.add(node_id)

    reported: dict[str, list[Report]] = {}
    for report in reports:
        reported.setdefault(report.container_id, []).append(report)

    for cid in sorted(containers):
        record = containers[cid]
        running_copies = [r for r in reported.get(cid, ())
                          if r.status not in TERMINAL_STATUSES]
        if record.desired == "removed":
            if not running_copies and not _placed_on_live_node(record, down):
                actions.delete.append(cid)
            continue
        if record.schedule_state == "pending":
            actions.place.append(cid)
        elif record.schedule_state in LIVE and record.node_id in down:
            loss = node_lost(cid, record, "is down")
            if isinstance(loss, Reschedule):
                actions.reschedule.append(loss)
            else:
                actions.orphan.append(loss)
        elif record.schedule_state in LIVE and record.node_id in draining \
                and record.spec.restart.name in RESCHEDULE_POLICIES \
                and record.desired == "running" and not record.spec.exclusive:
            actions.reschedule.append(Reschedule(cid, record.node_id, record.generation + 1))

    rescheduled = {r.container_id for r in actions.reschedule}
    for cid in sorted(reported):
        known = containers.get(cid)
        for report in sorted(reported[cid], key=lambda r: (r.node_id, r.generation)):
            reason = _stale_reason(known, report, rescheduled)
            if reason is not None:
                if report.status not in TERMINAL_STATUSES or known is None \
                        or known.desired == "removed":
                    actions.stop.append(StopStale(report.node_id, cid, report.generation,
                                                  reason))
                continue
            assert known is not None
            target = _FROM_STATUS.get(report.status)
            if target is None or target == known.schedule_state:
                continue
            # Forward only, except out of "orphaned": that was a guess made while the node
            # was silent, and its owner now says what became of the container.
            if _ORDER[target] > _ORDER[known.schedule_state] \
                    or known.schedule_state == "orphaned":
                actions.observe.append(Observe(cid, target))
    return actions


def node_lost(cid: str, record: ContainerRecord, why: str) -> Reschedule | Orphan:
    """What becomes of a live container whose node is lost (``why``: "is down", "was
    removed"): placed again elsewhere when its restart policy asks for restarts, else
    orphaned, visibly."""
    if record.spec.restart.name in RESCHEDULE_POLICIES and record.desired == "running":
        return Reschedule(cid, record.node_id, record.generation + 1)
    return Orphan(cid, record.node_id, f"node {record.node_id} {why} and the restart policy "
                                       f"is {record.spec.restart.name}")


def _placed_on_live_node(record: ContainerRecord, down: set[str]) -> bool:
    return record.schedule_state in LIVE and bool(record.node_id) and record.node_id not in down


def _stale_reason(record: ContainerRecord | None, report: Report,
                  rescheduled: set[str]) -> str | None:
    if record is None:
        return "the cluster has no such container"
    if record.desired == "removed":
        return "the container was removed"
    if report.container_id in rescheduled:
        return "the container is being rescheduled"
    if record.node_id != report.node_id:
        return f"the container now belongs to node {record.node_id or '(none)'}"
    if report.generation < record.generation:
        return f"generation {report.generation} is older than {record.generation}"
    if report.generation > record.generation:
        return f"generation {report.generation} was never assigned"
    return None
