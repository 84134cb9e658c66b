"""One commit cycle of the leader: staged records, what to place, what to tell workers.

Work items (submissions, joins, stops, reconciler actions) stage changes on a ``LeaderCycle``; the
leader then places what is pending, commits the plan under its leadership guard, caches what
was committed, sends the commands whose records were committed, and lets each work item answer
its caller. A work item that raises while staging is rolled back alone.
"""

from __future__ import annotations

import abc
import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from protocol.errors import ShoalError
from protocol.messages import Message
from scheduler.cluster.tx import Entry, Table
from scheduler.placement import Explanation
from scheduler.reconcile import LIVE
from scheduler.store import APPS, CONTAINERS, NODES, AppRecord, ContainerRecord, NodeRecord

KindName = Literal["containers", "nodes", "apps"]
Key = tuple[KindName, str]

# A container id may be used again once its record is gone (a job's name reused after ``rm``),
# and a worker fences by id: the new record's generations must all be above the old one's.
# A record starts at the store revision the leader knows when it is created, times this span:
# that revision is above every revision of the earlier record's life (its deletion included),
# so the new generations clear the old ones as long as one record is reassigned fewer than a
# million times. Read in decimal, a generation says both: 4521000003 is the third assignment of
# the record created after revision 4521.
GENERATION_SPAN = 1_000_000


def occupies_node(record: ContainerRecord | None) -> bool:
    """Whether the record holds a reservation on its node (placement must count it)."""
    return (record is not None and bool(record.node_id) and record.desired != "removed"
            and record.schedule_state in LIVE)


def holds_addresses(record: ContainerRecord) -> bool:
    """Whether the record keeps its overlay addresses: while it holds its node, and while it
    is orphaned there (its node went silent; the container may still run with them, and
    takes the node's word when it comes back), never once it leaves the node."""
    return (bool(record.node_id) and record.desired != "removed"
            and (record.schedule_state in LIVE or record.schedule_state == "orphaned"))


@dataclass(slots=True)
class Outgoing:
    """A command for a node, sent after the commit when ``key`` (if any) was committed."""

    node_id: str
    message: Message
    key: Key | None


class Work(abc.ABC):
    """A request the leader serves in a cycle. ``future`` gets its answer."""

    def __init__(self) -> None:
        self.future: asyncio.Future[Message | None] = (
            asyncio.get_running_loop().create_future())
        self.queued_at = time.monotonic()  # where a placement's latency starts

    @abc.abstractmethod
    def stage(self, cycle: LeaderCycle) -> None:
        """Stage this request's changes; raise a ShoalError to refuse it (it is rolled back)."""

    def refused(self, cycle: LeaderCycle, container_id: str, why: Explanation) -> None:
        """Placement found no node for one of this request's containers. Default: it waits."""
        cycle.keep_pending(container_id, why)

    @abc.abstractmethod
    def finish(self, cycle: LeaderCycle) -> Message | None:
        """The commit is done (see ``cycle.committed``/``cycle.failed``): the answer."""

    def fail(self, error: ShoalError) -> None:
        if not self.future.done():
            self.future.set_exception(error)

    def resolve(self, cycle: LeaderCycle) -> None:
        if self.future.done():
            return
        try:
            self.future.set_result(self.finish(cycle))
        except ShoalError as exc:
            self.future.set_exception(exc)


@dataclass
class LeaderCycle:
    """What one cycle stages and decides."""

    now: float
    containers: Table[ContainerRecord]
    nodes: Table[NodeRecord]
    apps: Table[AppRecord]
    place: dict[str, Work | None] = field(default_factory=dict)  # pending ids → who asked
    outgoing: list[Outgoing] = field(default_factory=list)
    released: set[str] = field(default_factory=set)  # ids whose node reservation went away
    nodes_changed: bool = False
    committed: set[Key] = field(default_factory=set)
    failed: dict[Key, ShoalError] = field(default_factory=dict)
    joined: list[str] = field(default_factory=list)  # node ids whose join is in this cycle
    recheck: set[str] = field(default_factory=set)  # ids to reconcile again after the commit
    revision: int = 0  # the newest store revision the leader knows of (see GENERATION_SPAN)

    @classmethod
    def over(cls, now: float, containers: dict[str, Entry[ContainerRecord]],
             nodes: dict[str, Entry[NodeRecord]],
             apps: dict[str, Entry[AppRecord]] | None = None, *,
             revision: int = 0) -> LeaderCycle:
        return cls(now, Table(CONTAINERS, containers), Table(NODES, nodes),
                   Table(APPS, apps if apps is not None else {}), revision=revision)

    def first_generation(self, cid: str) -> int:
        """The generation a new record for ``cid`` starts at: above every generation an
        earlier record of that id had (``GENERATION_SPAN``), and above the generation of a
        removed record it replaces before that record is deleted."""
        earlier = self.containers.get(cid)
        return max(self.revision * GENERATION_SPAN, earlier.generation if earlier else 0)

    def mark(self) -> tuple[int, int, int, int, bool, int]:
        return (self.containers.mark(), self.nodes.mark(), len(self.outgoing),
                len(self.joined), self.nodes_changed, self.apps.mark())

    def rollback(self, mark: tuple[int, int, int, int, bool, int]) -> None:
        self.containers.rollback(mark[0])
        self.nodes.rollback(mark[1])
        del self.outgoing[mark[2]:]
        del self.joined[mark[3]:]
        self.nodes_changed = mark[4]
        self.apps.rollback(mark[5])

    def put_container(self, cid: str, record: ContainerRecord) -> None:
        """Stage a container; remember when it stops holding its node's reservation. Its
        overlay addresses go when it leaves its node (``holds_addresses``; given back after
        the commit)."""
        if occupies_node(self.containers.get(cid)) and not occupies_node(record):
            self.released.add(cid)
        if record.addresses and not holds_addresses(record):
            record = msgspec.structs.replace(record, addresses={})
        self.containers.put(cid, record)

    def delete_container(self, cid: str) -> None:
        if occupies_node(self.containers.get(cid)):
            self.released.add(cid)
        self.containers.delete(cid)

    def put_node(self, node_id: str, record: NodeRecord) -> None:
        self.nodes.put(node_id, record)
        self.nodes_changed = True

    def delete_node(self, node_id: str) -> None:
        self.nodes.delete(node_id)
        self.nodes_changed = True

    def keep_pending(self, cid: str, why: Explanation) -> None:
        """A container placement refused stays pending, with the reason visible in inspect."""
        record = self.containers.get(cid)
        if record is not None and record.placement != why.message:
            self.containers.put(cid, _with_placement(record, why.message))

    def send(self, node_id: str, message: Message, key: Key | None = None) -> None:
        self.outgoing.append(Outgoing(node_id, message, key))

    def ok(self, key: Key) -> bool:
        return key in self.committed

    def error(self, key: Key) -> ShoalError | None:
        return self.failed.get(key)


def _with_placement(record: ContainerRecord, text: str) -> ContainerRecord:
    return msgspec.structs.replace(record, placement=text[:4096])
