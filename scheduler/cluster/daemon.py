"""One scheduler process: a listener, the API, and the campaign for leadership.

Every scheduler listens and serves reads. All of them campaign; the one elected builds a
``Leader`` (loading the cluster from etcd) and serves writes and worker sessions until it
loses the leadership or is told to stop; then it ends its sessions (workers join the next
leader) and campaigns again. A standby never gives up: its campaign outlives lost leases and
etcd members (``Election.campaign``), and a term that fails for any reason is followed by
another. Every scheduler registers itself as a manager (``managers``); the leader tells its
workers every manager's address, so they can follow a failover. Standbys answer writes with
``Unavailable`` naming the leader; a standby with a state dir keeps a copy of the leader's
images (``ImageSync``), so a failover finds them in the new leader's store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import structlog

import channels
from channels._curve import CLIENT, ENROLL_PREFIX, WORKER
from channels.local import listen_local
from protocol.addresses import DEFAULT_SCHEDULER, advertised
from protocol.errors import ShoalError
from scheduler.cluster.api import ClusterApi
from scheduler.cluster.auth import ENROLLABLE, ClusterAuth
from scheduler.cluster.images import ClusterImages
from scheduler.cluster.imagesync import RESYNC_INTERVAL, ImageSync
from scheduler.cluster.leader import Leader, LeaderOptions
from scheduler.cluster.managers import ManagerRegistry
from scheduler.cluster.metrics import SchedulerLevels, SchedulerMetrics
from scheduler.store import Election, LeaderRecord, Store

log = structlog.get_logger("shoal.scheduler")

DEFAULT_LISTEN = DEFAULT_SCHEDULER
# Pause before campaigning or following again after a failure the store did not ride out.
RETRY_PAUSE = 1.0


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    listen: str = DEFAULT_LISTEN
    # The address others use to reach us (``protocol.addresses.advertised``); default: the
    # bound one, which must then not be a wildcard.
    advertise: str = ""
    name: str = ""  # default: hostname-pid
    lease_ttl: int = 10  # seconds without us before a standby takes over
    channel_heartbeat: float = 1.0
    channel_timeout: float = 5.0
    leader: LeaderOptions = field(default_factory=LeaderOptions)
    # Where this scheduler keeps the cluster's images (``images/`` below it); None: none kept.
    state_dir: Path | None = None
    image_resync: float = RESYNC_INTERVAL  # a standby's full image sync without events
    # CURVE on the tcp listener: keys and tokens in etcd (``auth``). False: no authentication
    # at all (``--insecure``, and in-process tests).
    secure: bool = False
    # A second listener on this ipc socket path, root-only (its file's mode is the
    # authentication, as docker.sock's): "" for none.
    ipc: str = ""


class SchedulerDaemon:
    """Run with ``await daemon.run(stop)``; ``address`` is set once listening."""

    def __init__(self, store: Store, options: DaemonOptions,
                 metrics: SchedulerMetrics | None = None) -> None:
        self.store = store
        self.options = options
        self.metrics = metrics or SchedulerMetrics()
        self.metrics.watch(self.levels)
        self.name = options.name or f"{socket.gethostname()}-{os.getpid()}"
        images = ClusterImages(options.state_dir / "images") if options.state_dir else None
        channel_options = channels.ChannelOptions(
            name=self.name, heartbeat=options.channel_heartbeat, timeout=options.channel_timeout)
        self.auth = ClusterAuth(store, options.state_dir) if options.secure else None
        self.api = ClusterApi(store, self.name, channel_options, images, self.auth,
                              self._manager_addresses)
        self.image_sync = (ImageSync(images, self.name, channel_options,
                                     resync=options.image_resync, identity=self._identity)
                           if images else None)
        self.ipc_address = ""  # the root-only ipc listener's address, once listening
        self.address = ""
        self.listen_address = ""  # where the listener is bound (a port 0 resolved)
        self.listening = asyncio.Event()
        self.leading = asyncio.Event()
        self.leader_known = asyncio.Event()  # set while some scheduler holds the leadership
        self.following = asyncio.Event()  # set while another scheduler leads and we stand by
        self.election: Election | None = None  # once running: its ``waiting`` says we campaign
        self.managers: ManagerRegistry | None = None  # set once listening
        self.listener: channels.Listener | None = None  # set while listening
        self.ipc_listener: channels.Listener | None = None

    def _identity(self) -> channels.Keypair | None:
        return self.auth.keypair if self.auth is not None else None

    def _manager_addresses(self) -> list[str]:
        return self.managers.addresses() if self.managers is not None else [self.address]

    async def _listen(self) -> tuple[channels.Listener, list[asyncio.Task[None]]]:
        """The tcp listener (with CURVE when secure: each role served by its own handler)
        and the root-only ipc one; the tasks that serve them."""
        opts = self.options
        channel_options = channels.ChannelOptions(
            name=self.name, heartbeat=opts.channel_heartbeat, timeout=opts.channel_timeout)
        security = None
        if self.auth is not None:
            await self.auth.load()
            security = channels.CurveServer(self.auth.cluster, self.auth.access)
        listener = await channels.listen(opts.listen, channel_options, security)
        api = self.api
        tasks = [asyncio.create_task(channels.serve(listener.receiver, api.handle))]
        if self.auth is not None:
            tasks += [
                asyncio.create_task(channels.serve(listener.route(CLIENT), api.handle_client)),
                asyncio.create_task(channels.serve(listener.route(WORKER), api.handle_worker)),
                asyncio.create_task(self.auth.run()),
            ]
            tasks += [asyncio.create_task(channels.serve(
                listener.route(ENROLL_PREFIX + role), api.handle_enroll))
                for role in ENROLLABLE]
        if opts.ipc:
            try:
                local = await listen_local(opts.ipc, channel_options)
            except ShoalError:
                await listener.close()
                for task in tasks:
                    task.cancel()
                raise
            self.ipc_listener = local
            self.ipc_address = local.address
            tasks.append(asyncio.create_task(channels.serve(local.receiver, api.handle)))
        return listener, tasks

    async def run(self, stop: asyncio.Event) -> None:
        opts = self.options
        listener, serving = await self._listen()
        self.listen_address = listener.address
        self.listener = listener
        try:
            self.address = advertised(listener.address, opts.advertise)
        except ShoalError:
            await listener.close()
            if self.ipc_listener is not None:
                await self.ipc_listener.close()
            for task in serving:
                task.cancel()
            raise
        me = LeaderRecord(id=self.name, address=self.address)
        election = self.election = Election(self.store.client, self.store.layout, me,
                                            ttl=opts.lease_ttl)
        self.managers = ManagerRegistry(self.store, me, opts.lease_ttl, self._managers_changed)
        tasks = [*serving, asyncio.create_task(self._observe(election)),
                 asyncio.create_task(self.managers.run())]
        log.info("scheduler listening", name=self.name, address=self.address)
        self.listening.set()
        try:
            while not stop.is_set():
                try:
                    await self._term(election, stop)
                except Exception:
                    # A bug, not etcd (the store raises only ShoalError, handled in _term):
                    # log it loudly, but keep serving and campaigning rather than take the
                    # listener and every standby duty down with it.
                    log.exception("a term ended in an unexpected error; campaigning again")
                    await asyncio.sleep(RETRY_PAUSE)
        finally:
            await listener.close()
            if self.ipc_listener is not None:
                await self.ipc_listener.close()
            await self.api.forwarder.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.image_sync is not None:
                await self.image_sync.close()

    def levels(self) -> SchedulerLevels:
        """What a metrics scrape reads: the leader's cache by state, sessions, stalls."""
        listener = self.listener
        channel_sessions = len(listener.peers) if listener is not None else 0
        stalls = listener.stats.credit_stalls if listener is not None else 0
        leader = self.api.leader
        if leader is None:
            return SchedulerLevels(leader=False, channel_sessions=channel_sessions,
                                   credit_stalls=stalls)
        containers: dict[str, int] = {}
        for entry in leader.containers.values():
            state = entry.record.schedule_state
            containers[state] = containers.get(state, 0) + 1
        nodes: dict[str, int] = {}
        for node in leader.nodes.values():
            status = node.record.info.status
            nodes[status] = nodes.get(status, 0) + 1
        return SchedulerLevels(leader=True, containers=containers, nodes=nodes,
                               worker_sessions=len(leader.sessions),
                               channel_sessions=channel_sessions, credit_stalls=stalls)

    def _managers_changed(self, addresses: list[str]) -> None:
        leader = self.api.leader
        if leader is not None:
            leader.set_managers(addresses)

    async def until_ready(self) -> str:
        """Wait until this scheduler leads, or stands by following another's leadership (it
        then names the leader to writers and joining workers); returns ``leader`` or
        ``standby``. Both come after ``listening``."""
        waits = [asyncio.create_task(self.leading.wait()),
                 asyncio.create_task(self.following.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return "leader" if self.leading.is_set() else "standby"

    async def _observe(self, election: Election) -> None:
        while True:
            try:
                async for record in election.observe():
                    self.api.leader_record = record
                    if self.image_sync is not None:
                        self.image_sync.follow(record)
                    if record is None:
                        self.leader_known.clear()
                    else:
                        self.leader_known.set()
                    if record is not None and record.id != self.name:
                        self.following.set()
                    else:
                        self.following.clear()
            except ShoalError as exc:
                log.warning("following the leader key failed; retrying", error=str(exc))
                await asyncio.sleep(RETRY_PAUSE)
            except Exception:  # a bug: keep following (see run)
                log.exception("following the leader key failed unexpectedly; retrying")
                await asyncio.sleep(RETRY_PAUSE)

    async def _term(self, election: Election, stop: asyncio.Event) -> None:
        """Campaign; lead until leadership ends or we are stopped."""
        campaign = asyncio.create_task(election.campaign())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([campaign, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not campaign.done():
            campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError, ShoalError):
                await campaign
            return
        try:
            leadership = campaign.result()
        except ShoalError as exc:
            log.warning("campaign failed; trying again", error=str(exc))
            await asyncio.sleep(RETRY_PAUSE)
            return
        leader = Leader(self.store, leadership, self.options.leader, self.api.events,
                        self.metrics, self.api.pull_access.attach)
        if self.managers is not None:
            leader.managers = self.managers.addresses()
        reason = "stopped"
        try:
            if self.image_sync is not None:
                await self.image_sync.lead()  # the store is the leader's alone from here
            await leader.load()
            self.api.leader = leader
            self.leading.set()
            log.info("leading the cluster", name=self.name)
            running = asyncio.create_task(leader.run())
            lost = asyncio.create_task(leadership.lost.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([running, lost, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in (lost, stopping):
                task.cancel()
            if running.done() and not running.cancelled() and running.exception() is not None:
                reason = f"the leader failed: {running.exception()}"
                log.error("leader loop failed", error=str(running.exception()))
            elif leadership.lost.is_set() or leader.stopped_by_fence:
                reason = f"leadership lost: {leadership.reason or 'a write was fenced'}"
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, ShoalError):
                await running
        except ShoalError as exc:
            reason = f"taking over failed: {exc}"
            log.error("taking over failed", error=str(exc))
        finally:
            self.api.leader = None
            self.leading.clear()
            await leader.stop(reason)
            if self.image_sync is not None:
                self.image_sync.stand_by()
            if stop.is_set() or not leadership.lost.is_set():
                with contextlib.suppress(ShoalError):
                    await leadership.resign()
            else:
                await leadership.close()
            log.info("no longer leading", name=self.name, reason=reason)
