"""The leading scheduler: its cache of the cluster, worker sessions, and the commit cycle.

Only the leader writes container and node records, so its cache (loaded when it takes over,
then updated from its own commits) is the truth as committed. Everything that changes the
cluster is a work item or a reconciler action staged on a ``LeaderCycle``; one cycle runs at a time,
and whatever arrives while it commits is batched into the next. A cycle:

1. stages the work items (each alone rolled back if it refuses);
2. reconciles (pure ``reconcile``): the containers whose reports changed, or on the timer
   everything, with heartbeats from memory, so a silent node goes down;
3. places every pending container in one engine batch (refusals go back to who asked);
4. commits the plan under the leadership guard (transactions of ≤128 operations);
5. caches what was committed, sends Assign/Revoke for it, and answers the requests.

Heartbeats are kept in memory, not written: etcd holds ``last_seen`` from the join and each
status change; a new leader grants every node two timeouts to join it again. Liveness is
measured on this process's monotonic clock (``Leader.last_seen``), never against a time another
host wrote, so a node goes down exactly ``node_timeout`` after this scheduler last heard it: the
promise its workers' fencing (``scheduler.fencing``) is built on.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import structlog

import channels
from channels import Sender
from protocol.errors import Conflict, Internal, InvalidArgument, ShoalError, Unavailable
from protocol.eventfeed import EventFeed
from protocol.messages import (
    ContainerReport,
    Heartbeat,
    Managers,
    Message,
    NodeImages,
    NodeVolumes,
    Ok,
    Revoke,
)
from protocol.observed import ContainerState
from scheduler.cluster.cycle import Key, LeaderCycle, Work
from scheduler.cluster.cycle_placement import CyclePlacement
from scheduler.cluster.events import container_events, node_events
from scheduler.cluster.global_work import stage_global_jobs
from scheduler.cluster.metrics import SchedulerMetrics
from scheduler.cluster.node_work import SetNodeImages, SetNodeVolumes
from scheduler.cluster.overlay_endpoints import assignment
from scheduler.cluster.overlay_leader import Change as ContainerChange
from scheduler.cluster.overlay_leader import LeaderOverlay
from scheduler.cluster.sessions import Held, WorkerSession
from scheduler.cluster.tx import Entry
from scheduler.cluster.work import stage_node_loss
from scheduler.fencing import fence_delay
from scheduler.placement import Strategy
from scheduler.reconcile import LIVE, Actions, Orphan, Report, Reschedule, reconcile
from scheduler.store import (
    APPS,
    CONTAINERS,
    NODES,
    AppRecord,
    Change,
    CommitOutcome,
    ContainerRecord,
    Leadership,
    NodeRecord,
    Store,
)

log = structlog.get_logger("shoal.scheduler")
replace = msgspec.structs.replace


@dataclass(frozen=True, slots=True)
class LeaderOptions:
    strategy: Strategy = "spread"
    heartbeat_interval: float = 1.0
    node_timeout: float = 5.0  # silence after which a node is declared down
    # When a cut-off worker kills its exclusive containers; None: the node timeout less the
    # margin (``scheduler.fencing``). Checked against the node timeout when a Leader starts.
    fence_after: float | None = None
    reconcile_interval: float = 1.0  # full reconciliation (and node liveness) period
    seed: int = 0


class Leader:
    """The cluster as the elected scheduler runs it."""

    def __init__(self, store: Store, leadership: Leadership, options: LeaderOptions,
                 events: EventFeed | None = None,
                 metrics: SchedulerMetrics | None = None,
                 outgoing: Callable[[Message], Message] | None = None) -> None:
        self.store = store
        # What a command gets as it leaves for a worker (the registry access of an Assign).
        self.outgoing = outgoing
        self.metrics = metrics or SchedulerMetrics()
        self.leadership = leadership
        self.options = options
        self.fence_after = fence_delay(options.heartbeat_interval, options.node_timeout,
                                       options.fence_after)
        self.events = events or EventFeed()
        self.containers: dict[str, Entry[ContainerRecord]] = {}
        self.nodes: dict[str, Entry[NodeRecord]] = {}
        self.apps: dict[str, Entry[AppRecord]] = {}
        self.last_seen: dict[str, float] = {}  # node id → time.monotonic() of its last word
        self.sessions: dict[str, WorkerSession] = {}
        self.managers: list[str] = []  # every live scheduler's address, told to workers
        self.holders: dict[str, set[str]] = {}  # container id → nodes that report holding it
        self.cycles = 0
        self.revision = 0  # the newest store revision known: new records' generations start there
        self._works: list[Work] = []
        self._dirty: set[str] = set()
        self._full = True
        self._wake = asyncio.Event()
        self.placement = CyclePlacement(options.strategy, options.seed, self.metrics)
        self._reload: set[Key] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._node_index: dict[str, list[str]] | None = None
        self._stopped = False
        self.stopped_by_fence = False  # a commit found the leadership gone
        self._changed = asyncio.Event()
        self.overlay = LeaderOverlay(store, leadership)

    # --- lifecycle ----------------------------------------------------------------------------
    async def load(self) -> None:
        """Read the cluster as committed; every node gets two timeouts to (re)join us: one for
        its worker to notice that the old leader is gone, one to find and join us."""
        now = time.monotonic() + self.options.node_timeout
        async for node in self.store.list(NODES):
            self.nodes[node.id] = Entry(node.value, node.mod_revision)
            self.last_seen[node.id] = now
        async for container in self.store.list(CONTAINERS, page_size=5000):
            self.containers[container.id] = Entry(container.value, container.mod_revision)
        async for app in self.store.list(APPS):
            self.apps[app.id] = Entry(app.value, app.mod_revision)
        # Read after the listing: at or above every deletion the listing reflects.
        self.revision = await self.store.revision()
        await self.overlay.load(self.containers, self.nodes)
        log.info("leader loaded the cluster", nodes=len(self.nodes),
                 containers=len(self.containers))

    async def run(self) -> None:
        """Run cycles until stopped or until leadership is lost (then raise NotLeader)."""
        ticker = asyncio.create_task(self._tick())
        try:
            while not self._stopped:
                await self._wake.wait()
                self._wake.clear()
                await self._cycle()
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.options.reconcile_interval)
            self._full = True
            self._wake.set()

    async def stop(self, reason: str) -> None:
        """Stop leading: refuse queued work, end every worker session (they join the next
        leader), and wait for background sends."""
        self._stopped = True
        self._wake.set()
        for work in self._works:
            work.fail(Unavailable(f"the scheduler stopped leading: {reason}"))
        self._works.clear()
        for session in list(self.sessions.values()):
            await session.close(f"the scheduler stopped leading: {reason}")
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def until(self, predicate: Callable[[Leader], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked after every cycle and message."""
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()

    def submit(self, work: Work) -> Awaitable[Message | None]:
        """Queue a request for the next cycle; await the result for its answer."""
        if self._stopped:
            work.fail(Unavailable("this scheduler is no longer the leader"))
        else:
            self._works.append(work)
            self._wake.set()
        return work.future

    # --- worker sessions ----------------------------------------------------------------------
    def is_live(self, node_id: str) -> bool:
        session = self.sessions.get(node_id)
        return (session is not None and session.alive and
                time.monotonic() - self.last_seen.get(node_id, -math.inf)
                <= self.options.node_timeout)

    def open_session(self, node_id: str, epoch: int, commands: Sender,
                     held: list[ContainerReport]) -> Sender:
        """A join was committed: start the session; resend what the node should run."""
        old = self.sessions.pop(node_id, None)
        if old is not None:
            old.end("replaced by a new join of the same node")
        reports_tx, reports_rx = channels.pipe()
        session = WorkerSession(node_id, epoch, commands, reports_rx, self._on_message,
                                self._on_end, self.outgoing)
        self.sessions[node_id] = session
        self.last_seen[node_id] = time.monotonic()
        for report in held:
            self._record(session, report)
        if self._node_index is None:
            self._node_index = {}
            for cid, entry in self.containers.items():
                if entry.record.node_id:
                    self._node_index.setdefault(entry.record.node_id, []).append(cid)
        resent = 0
        for cid in self._node_index.get(node_id, ()):
            cached = self.containers.get(cid)
            if cached is None:
                continue
            record = cached.record
            mine = session.held.get(cid)
            if (record.node_id == node_id and record.desired == "running"
                    and record.schedule_state in LIVE
                    and (mine is None or mine.generation != record.generation)):
                session.send(assignment(cid, record))
                resent += 1
        endpoints = self.overlay.snapshot(node_id)
        if endpoints.endpoints:  # a node with no overlay container has nothing to program
            session.send(endpoints)
        log.info("worker joined", node_id=node_id, epoch=epoch, held=len(held), resent=resent)
        self._wake.set()
        return reports_tx

    def set_managers(self, addresses: list[str]) -> None:
        """The live schedulers changed: every joined worker is told."""
        self.managers = list(addresses)
        for session in self.sessions.values():
            session.send(Managers(addresses=self.managers))

    def end_session(self, node_id: str, reason: str) -> None:
        """End the node's session, if it has one (its node record is gone)."""
        session = self.sessions.get(node_id)
        if session is not None:
            session.end(reason)
        self.last_seen.pop(node_id, None)

    def _record(self, session: WorkerSession, report: ContainerReport) -> None:
        session.held[report.container_id] = Held(report.generation, report.state)
        self.holders.setdefault(report.container_id, set()).add(session.node_id)
        self._dirty.add(report.container_id)

    def _forget(self, node_id: str, cid: str) -> None:
        holders = self.holders.get(cid)
        if holders is not None:
            holders.discard(node_id)
            if not holders:
                del self.holders[cid]

    def _on_message(self, session: WorkerSession, message: Message) -> None:
        now = time.monotonic()
        self._changed.set()
        if isinstance(message, ContainerReport):
            if message.node_id != session.node_id:
                log.warning("report names another node; ignored", node_id=session.node_id,
                            claimed=message.node_id, container_id=message.container_id)
                return
            self.last_seen[session.node_id] = now
            self._record(session, message)
            self._wake.set()
        elif isinstance(message, Heartbeat):
            reply = message.reply if isinstance(message.reply, Sender) else None
            if message.node_id != session.node_id or message.epoch != session.epoch:
                log.warning("heartbeat for another node or epoch; ignored",
                            node_id=session.node_id, epoch=session.epoch,
                            claimed=message.node_id, claimed_epoch=message.epoch)
                if reply is not None:
                    reply.abort(InvalidArgument(
                        f"this session is node {session.node_id} epoch {session.epoch}"))
                return
            self.last_seen[session.node_id] = now
            if reply is not None:
                self._spawn(reply.send(Ok(), last=True))
        elif isinstance(message, NodeImages):
            if message.node_id != session.node_id or message.epoch != session.epoch:
                log.warning("images for another node or epoch; ignored",
                            node_id=session.node_id, claimed=message.node_id)
                return
            self.last_seen[session.node_id] = now
            self._spawn(self._await(self.submit(
                SetNodeImages(session.node_id, message.epoch, message.images))))
        elif isinstance(message, NodeVolumes):
            if message.node_id != session.node_id or message.epoch != session.epoch:
                log.warning("volumes for another node or epoch; ignored",
                            node_id=session.node_id, claimed=message.node_id)
                return
            self.last_seen[session.node_id] = now
            self._spawn(self._await(self.submit(
                SetNodeVolumes(session.node_id, message.epoch, message.volumes))))
        else:
            log.warning("unexpected message on a reports channel; ignored",
                        node_id=session.node_id, message_type=type(message).__name__)

    def _on_end(self, session: WorkerSession, reason: str) -> None:
        if self.sessions.get(session.node_id) is session:
            del self.sessions[session.node_id]
        for cid in session.held:
            self._forget(session.node_id, cid)
        session.held.clear()

    @staticmethod
    async def _await(answer: Awaitable[Message | None]) -> None:
        await answer

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            with contextlib.suppress(ShoalError):
                await coro

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the cycle ----------------------------------------------------------------------------
    async def _cycle(self) -> None:
        if self._reload:
            await self._reload_keys()
        works, self._works = self._works, []
        try:
            await self._serve(works)
        except BaseException as exc:
            # The commit failed (the leadership went with its lease, etcd refused) or the term
            # was cancelled: every request of this cycle still waiting is answered, never left
            # to hang its caller; it may go to the next leader.
            for work in works:
                work.fail(exc if isinstance(exc, ShoalError) else Unavailable(
                    "the scheduler stopped leading while serving this request"))
            raise

    async def _serve(self, works: list[Work]) -> None:
        dirty, self._dirty = self._dirty, set()
        full, self._full = self._full, False
        cycle = LeaderCycle.over(time.time(), self.containers, self.nodes, self.apps,
                                 revision=self.revision)
        for work in works:
            mark = cycle.mark()
            try:
                work.stage(cycle)
            except ShoalError as exc:
                cycle.rollback(mark)
                work.fail(exc)
            except Exception as exc:
                log.exception("staging a request failed", work=type(work).__name__)
                cycle.rollback(mark)
                work.fail(Internal(f"{type(work).__name__} failed: {exc}"))
        if full or cycle.nodes_changed:  # a node joined, changed or left: global jobs follow
            stage_global_jobs(cycle)
        self._reconcile(cycle, dirty, full)
        started = time.monotonic()
        placed = self.placement.place(cycle)
        addresses = await self.overlay.allocate(cycle, placed)
        if any((r := cycle.containers.get(cid)) is not None and r.schedule_state == "pending"
               for cid in placed):
            self.placement.invalidate()  # a placement undone for want of an address
        changes = await self._commit(cycle)
        self.cycles += 1
        self._changed.set()
        await self.overlay.settle(cycle, changes, addresses, self.nodes)
        self._deliver(cycle)
        for node_id, notice in self.overlay.notices().items():
            session = self.sessions.get(node_id)
            if session is not None:
                session.send(notice)
        self._node_index = None  # the cache changed: rebuilt by the first join that needs it
        for work in works:
            work.resolve(cycle)
        self._count(cycle, works, placed, started)
        self._node_index = None
        if cycle.recheck:
            self._dirty.update(cycle.recheck)
            self._wake.set()

    def _count(self, cycle: LeaderCycle, works: list[Work], placed: list[str],
               started: float) -> None:
        """The cycle's placements that were committed, and the requests it refused."""
        now = time.monotonic()
        latency = self.metrics.placement_seconds
        for cid in placed:
            if ("containers", cid) in cycle.committed:
                owner = cycle.place.get(cid)
                latency.observe(now - (owner.queued_at if owner is not None else started))
        for work in works:
            future = work.future
            if future.done() and not future.cancelled():
                error = future.exception()
                if isinstance(error, ShoalError):
                    self.metrics.refused_requests.labels(type(work).__name__,
                                                         error.wire_code).inc()

    def _reconcile(self, cycle: LeaderCycle, dirty: set[str], full: bool) -> None:
        table = cycle.containers
        clock = time.monotonic()
        if full:
            ids: list[str] | set[str] = list(table.ids())
            # A node first known here (not loaded, not joined yet) was heard of just now.
            nodes = {nid: replace(n, last_seen=self.last_seen.setdefault(nid, clock))
                     for nid in cycle.nodes.ids() if (n := cycle.nodes.get(nid)) is not None}
        else:
            if not dirty:
                return
            ids, nodes = dirty, {}
        containers = {cid: rec for cid in ids if (rec := table.get(cid)) is not None}
        reports = [
            Report(nid, cid, held.generation, held.state.status)
            for cid in (self.holders if full else dirty)
            for nid in self.holders.get(cid, ())
            if (session := self.sessions.get(nid)) is not None
            and (held := session.held.get(cid)) is not None
        ]
        actions = reconcile(containers, nodes, reports, now=clock,
                            node_timeout=self.options.node_timeout)
        self._apply(cycle, actions, dirty)

    def _apply(self, cycle: LeaderCycle, actions: Actions, dirty: set[str]) -> None:
        table = cycle.containers
        for nid in actions.nodes_down:
            down = cycle.nodes.get(nid)
            if down is None:
                continue
            log.warning("node down: no heartbeat within the timeout", node_id=nid,
                        timeout=self.options.node_timeout)
            cycle.put_node(nid, replace(down, info=replace(down.info, status="down")))
            session = self.sessions.get(nid)
            if session is not None:
                session.end("node declared down: heartbeats missed")
        losses: list[Reschedule | Orphan] = [*actions.reschedule, *actions.orphan]
        for loss in losses:
            stage_node_loss(cycle, loss, "is down")
        for s in actions.stop:
            session = self.sessions.get(s.node_id)
            if session is None:
                continue
            held = session.held.get(s.container_id)
            if held is not None and held.generation <= s.generation:
                del session.held[s.container_id]
                self._forget(s.node_id, s.container_id)
            log.info("revoking a stale copy", node_id=s.node_id, container_id=s.container_id,
                     generation=s.generation, reason=s.reason)
            cycle.send(s.node_id, Revoke(container_id=s.container_id, generation=s.generation,
                                         reason=s.reason))
            cycle.recheck.add(s.container_id)
        observed = set()
        for ob in actions.observe:
            record = table.get(ob.container_id)
            if record is None:
                continue
            observed.add(ob.container_id)
            cycle.put_container(ob.container_id, replace(
                record, schedule_state=ob.schedule_state,
                observed=self._state_of(record, ob.container_id)))
        for cid in actions.delete:
            cycle.delete_container(cid)
        for cid in actions.place:
            cycle.place.setdefault(cid, None)
        for cid in dirty - observed:  # news that does not move the state forward (restarts)
            record = table.get(cid)
            if record is None or record.desired == "removed":
                continue
            state = self._state_of(record, cid)
            if state is not None and state != record.observed and record.schedule_state in LIVE:
                cycle.put_container(cid, replace(record, observed=state))

    def _state_of(self, record: ContainerRecord, cid: str) -> ContainerState | None:
        session = self.sessions.get(record.node_id)
        held = session.held.get(cid) if session is not None else None
        if held is None or held.generation != record.generation:
            return record.observed
        return held.state

    async def _commit(self, cycle: LeaderCycle) -> list[ContainerChange]:
        """Commit the cycle's plan; the container records committed (before, after)."""
        plan: list[tuple[Key, Change]] = [
            (("containers", cid), change) for cid, change in cycle.containers.changes()]
        plan += [(("nodes", nid), change) for nid, change in cycle.nodes.changes()]
        plan += [(("apps", name), change) for name, change in cycle.apps.changes()]
        committed: list[ContainerChange] = []
        if not plan:
            return committed
        keys: list[Key] = [key for key, _ in plan]
        began = time.monotonic()
        try:
            result = await self.store.commit([change for _, change in plan],
                                             fence=self.leadership)
        except ShoalError as exc:
            log.error("plan commit failed", error=str(exc), changes=len(plan))
            for key in keys:
                cycle.failed[key] = exc
                self._reload.add(key)
            self.placement.invalidate()
            return committed
        finally:
            self.metrics.plan_commit_seconds.observe(time.monotonic() - began)
        lost = False
        news = []
        for key, outcome in zip(keys, result.results, strict=True):
            if outcome.outcome is CommitOutcome.COMMITTED:
                self.revision = max(self.revision, outcome.revision)
                kind, record_id = key
                if kind == "containers":
                    old = self.containers.get(record_id)
                    new = cycle.containers.staged.get(record_id)
                    committed.append((record_id, old.record if old else None, new))
                    news += container_events(record_id, old.record if old else None,
                                             new, cycle.now)
                    cycle.containers.apply(record_id, outcome.revision)
                elif kind == "nodes":
                    old_node = self.nodes.get(record_id)
                    news += node_events(record_id, old_node.record if old_node else None,
                                        cycle.nodes.staged.get(record_id), cycle.now)
                    cycle.nodes.apply(record_id, outcome.revision)
                else:
                    cycle.apps.apply(record_id, outcome.revision)
                cycle.committed.add(key)
                continue
            lost = lost or outcome.outcome is CommitOutcome.NOT_LEADER
            cycle.failed[key] = outcome.error or Conflict(
                f"{key[0]}/{key[1]} changed in etcd behind the leader's back; try again",
                details={"id": key[1]})
            self._reload.add(key)
        self.events.publish(*news)
        if len(cycle.committed) != len(keys):
            self.placement.invalidate()
            log.warning("part of a plan was not committed", changes=len(keys),
                        committed=len(cycle.committed))
        if lost:
            self.stopped_by_fence = True
            self._stopped = True  # the daemon sees leadership lost and steps down
        return committed

    def _deliver(self, cycle: LeaderCycle) -> None:
        for out in cycle.outgoing:
            if out.key is not None and out.key not in cycle.committed:
                continue
            session = self.sessions.get(out.node_id)
            if session is None:
                continue  # sent when the node joins again
            message = out.message
            if isinstance(message, Revoke):
                held = session.held.get(message.container_id)
                if held is not None and held.generation <= message.generation:
                    del session.held[message.container_id]
                    self._forget(out.node_id, message.container_id)
            session.send(message)

    async def _reload_keys(self) -> None:
        keys, self._reload = self._reload, set()
        try:  # a record found gone below was deleted at or before this revision
            self.revision = max(self.revision, await self.store.revision())
        except ShoalError as exc:
            log.warning("reading the store revision failed; will retry", error=str(exc))
            self._reload |= keys
            return
        for kind, record_id in keys:
            try:
                if kind == "containers":
                    got = await self.store.get(CONTAINERS, record_id)
                    if got is None:
                        self.containers.pop(record_id, None)
                    else:
                        self.containers[record_id] = Entry(got.value, got.mod_revision)
                elif kind == "apps":
                    got_app = await self.store.get(APPS, record_id)
                    if got_app is None:
                        self.apps.pop(record_id, None)
                    else:
                        self.apps[record_id] = Entry(got_app.value, got_app.mod_revision)
                else:
                    got_node = await self.store.get(NODES, record_id)
                    if got_node is None:
                        self.nodes.pop(record_id, None)
                    else:
                        self.nodes[record_id] = Entry(got_node.value, got_node.mod_revision)
            except ShoalError as exc:
                log.warning("re-reading a record failed; will retry", key=record_id,
                            error=str(exc))
                self._reload.add((kind, record_id))
