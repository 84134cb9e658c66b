"""The agent's I/O shell: joins a scheduler, runs the state machine's instructions on the engine.

It keeps one session with the leading scheduler: Join (with what it already holds), then
heartbeats and reports on the ``reports`` channel while Assign and Revoke arrive on
``commands``. When the session ends (scheduler gone, node declared down, leader changed) the
containers keep running; the agent reconnects with backoff, following the leader a standby
names, and joins again with its containers in ``held``.

The leader tells it every live scheduler's address (in ``Joined``, then ``Managers``): the
agent keeps that list (in ``managers_file``, so a restarted worker has it too) and tries those
schedulers as well as the ones it was told to ``--join``, so a worker that joined only the old
leader finds the new one.

With an ``ImageFetcher`` (workers that run images), an assigned container whose image this
worker lacks has it brought before it is created (``image_supply``: from the cluster's store
over the session, or pulled from its registry with the access the Assign carried, which is
kept in memory until then); a fetch or pull that fails (unknown image, a blob whose digest
does not match) fails the container, reported with the reason. Each join lists the images the
worker holds, for placement.

Fencing: the agent notes the send time of every heartbeat the leader acknowledges; once
``fence_after`` (learned in ``Joined``) has passed since the newest, it kills its ``exclusive``
containers (``worker.agent.fence`` decides when) and starts none until it is heard again. The
clock is CLOCK_BOOTTIME, which keeps counting while the host is suspended, as the scheduler's
clock does while this host sleeps.

An Assign sent again at the generation held (after ``network connect``/``disconnect`` through a
scheduler) puts the copy on exactly its spec's networks (``on_networks``), after the run that
makes it if that is still under way: a connect or disconnect that reached this node before the
container existed is carried out when it does.

Commands are decided in the order they arrive, but carried out per container
(``worker.agent.lanes``): a container whose image is being fetched holds up no other
container's run, stop or report, and a stop or newer run of it abandons the fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import msgspec
import structlog

import channels
from protocol.errors import ChannelError, EventsOverflow, NotFound, ShoalError, Unavailable
from protocol.limits import MAX_HELD_IMAGES, MAX_MANAGERS, MAX_NODE_VOLUMES
from protocol.messages import (
    Assign,
    ContainerReport,
    Heartbeat,
    Join,
    Joined,
    Managers,
    NetworkEndpoints,
    NodeImages,
    NodeVolumes,
    RegistryOptions,
    Revoke,
)
from protocol.observed import ContainerState, NodeInfo, NodeResources
from protocol.platforms import host_platform
from protocol.specs import JOB_LABEL, NetworkAttachment, OverlayEndpoint, Platform, VolumeInfo
from worker.agent.fence import ContactFence
from worker.agent.image_supply import ImageSupply
from worker.agent.lanes import ContainerLanes, LaneInstruction
from worker.agent.state import (
    AgentState,
    Assigned,
    ContainerChanged,
    Instruction,
    Reconnect,
    Refuse,
    Revoked,
    Run,
    SchedulerDown,
    SchedulerUp,
    SendReport,
    StopAndRemove,
)
from worker.engine.engine import Engine
from worker.engine.network_join import wait_for_peer
from worker.engine.records import EngineContainer
from worker.hostos import HOST
from worker.images.fetch import ImageFetcher

log = structlog.get_logger("shoal.agent")

BACKOFF_START = 0.2
FENCEABLE = frozenset({"running", "paused", "restarting"})


def fence_clock() -> float:
    """Seconds on a clock that only goes forward and keeps counting through a suspend."""
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))
BACKOFF_MAX = 10.0
WATCHED_ACTIONS = frozenset({"start", "die", "restart", "destroy", "pause", "unpause"})
# "health_status: healthy": the observed state carries the health, which the scheduler keeps.
HEALTH_ACTION = "health_status"


# Notice a dead scheduler well within any node timeout, so that after a failover the worker has
# joined the new leader before that leader would declare its node down. A dead scheduler is
# not waited for long either: the next one is tried.
# Where the scheduler's ``NetworkEndpoints`` go (the worker's ``Networks.set_endpoints``).
EndpointsHandler = Callable[[list[OverlayEndpoint]], Awaitable[None]]
# What puts a container on exactly the networks it is connected to (the native driver's
# ``set_connected``).
NetworksHandler = Callable[[EngineContainer, list[NetworkAttachment]], Awaitable[None]]
AGENT_OPTIONS = channels.ChannelOptions(heartbeat=0.25, timeout=1.5, connect_timeout=2.0)


def load_managers(path: Path | None) -> list[str]:
    """The schedulers' addresses kept by ``save_managers`` (none if absent or unreadable)."""
    if path is None:
        return []
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        if path.exists():
            log.warning("ignoring an unreadable managers file", path=str(path), error=str(exc))
        return []
    if not isinstance(saved, list):
        return []
    return [a for a in saved if isinstance(a, str) and a][:MAX_MANAGERS]


def save_managers(path: Path, addresses: list[str]) -> None:
    """Keep the schedulers' addresses across restarts (written whole, then renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(addresses))
    os.replace(tmp, path)


def host_node(node_id: str, address: str, labels: dict[str, str], engine: Engine,
              reported: Platform | None = None) -> NodeInfo:
    """This host as a node: platform (``reported`` if given: a test's override), cpus, memory
    and pids it offers, where it serves verbs."""
    memory = HOST.memory_total()
    pids = HOST.process_limit()
    storage = getattr(getattr(engine.driver, "storage", None), "name", "")
    return NodeInfo(
        id=node_id, hostname=platform.node(), platform=reported or host_platform(),
        capacity=NodeResources(millicpus=(os.cpu_count() or 1) * 1000, memory=memory,
                               pids=pids),
        labels=labels, engine_labels=labels, address=address, status="ready",
        runtime=engine.driver.name,
        storage_driver=storage)


class Agent:
    def __init__(self, engine: Engine, node: NodeInfo, schedulers: Sequence[str],
                 options: channels.ChannelOptions | None = None, *,
                 fetcher: ImageFetcher | None = None,
                 managers_file: Path | None = None,
                 security: channels.CurveClient | None = None,
                 on_endpoints: EndpointsHandler | None = None,
                 on_networks: NetworksHandler | None = None) -> None:
        self.engine = engine
        self.on_endpoints = on_endpoints  # where the cluster's overlay endpoints go
        self.on_networks = on_networks  # how a copy's connected networks are set
        self.node = node
        self.fetcher = fetcher
        self.supply = (ImageSupply(fetcher, node.platform, events=engine.events)
                       if fetcher is not None else None)
        # The registry access of each assigned container whose image may be pulled: in memory,
        # until its run is prepared or revoked.
        self._pull_access: dict[str, RegistryOptions] = {}
        self._scheduler: channels.Sender | None = None  # the joined session's root channel
        self.schedulers = list(schedulers)  # the --join list: always tried
        self.managers_file = managers_file
        self.managers = load_managers(managers_file)  # what the leader last said
        self.options = options or AGENT_OPTIONS
        self.security = security  # CURVE towards the managers (the cluster's key, ours)
        self.state = AgentState()
        self.fence = ContactFence()
        self._contact = asyncio.Event()  # set when the fence's deadline moves
        self._acks: set[asyncio.Task[None]] = set()
        self._lanes = ContainerLanes(self._prepare_run, self._commit)
        self._reports: channels.Sender | None = None
        self._epoch = 0
        self._announced: list[str] = []  # the images the scheduler was told of
        self._announced_volumes: list[VolumeInfo] = []  # and the volumes
        self._stimulus = itertools.count(1)
        self.joined = asyncio.Event()
        for record in engine.records.values():
            if record.generation:
                self.state.restore(record.id, record.generation, record.state.status,
                                   record.state.exit_code)

    def _sid(self) -> str:
        return f"{self.node.id}-{next(self._stimulus)}"

    async def run(self, stop: asyncio.Event) -> None:
        """Stay joined to the cluster until ``stop`` is set."""
        watcher = asyncio.create_task(self._watch_engine())
        fencer = asyncio.create_task(self._keep_fence())
        backoff = BACKOFF_START
        address = self.schedulers[0]
        try:
            while not stop.is_set():
                try:
                    leader = await self._session(address, stop)
                    backoff = BACKOFF_START
                    address = leader or self._after(address)
                    continue
                except Unavailable as exc:
                    # A live standby with no leader yet: it will lead or name the leader soon;
                    # ask it again rather than moving on to a scheduler that may be dead.
                    log.info("waiting for a leader", address=address, reason=str(exc))
                except ShoalError as exc:
                    log.warning("no session with the scheduler", address=address,
                                error=f"{type(exc).__name__}: {exc}")
                    address = self._after(address)
                self.state.handle(SchedulerDown(self._sid()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            watcher.cancel()
            fencer.cancel()
            await asyncio.gather(watcher, fencer, return_exceptions=True)
            await self._lanes.close()  # abandons image fetches; a create under way finishes

    def candidates(self) -> list[str]:
        """The schedulers to try, in order: the --join list, then those the leader named."""
        return list(dict.fromkeys([*self.schedulers, *self.managers]))

    def _after(self, address: str) -> str:
        """The scheduler to try after ``address`` failed: the next candidate (a leader a
        standby named may not be one: then the first)."""
        candidates = self.candidates()
        if address in candidates:
            return candidates[(candidates.index(address) + 1) % len(candidates)]
        return candidates[0]

    def _learn_managers(self, addresses: Sequence[str]) -> None:
        """The leader named the live schedulers: keep them, on disk too."""
        learned = list(dict.fromkeys(addresses))
        if not learned or learned == self.managers:
            return
        self.managers = learned
        log.info("managers learned", managers=",".join(learned))
        if self.managers_file is not None:
            try:
                save_managers(self.managers_file, learned)
            except OSError as exc:
                log.warning("cannot keep the managers' addresses", error=str(exc),
                            path=str(self.managers_file))

    async def _session(self, address: str, stop: asyncio.Event) -> str:
        """One joined session; returns the leader's address when a standby names one."""
        async with await channels.connect(address, self.options, self.security) as conn:
            commands_tx, commands_rx = channels.pipe(capacity=1024)
            held = [ContainerReport(node_id=self.node.id, container_id=record.id,
                                    generation=record.generation,
                                    state=self._reported(record.id, record.state))
                    for record in self.engine.records.values() if record.generation]
            self._announced = await self._held_images()
            self._announced_volumes = self._held_volumes()
            node = msgspec.structs.replace(self.node, images=self._announced,
                                           volumes=self._announced_volumes)
            sent_at = fence_clock()
            try:
                joined = await channels.request(
                    conn.sender, lambda r: Join(node=node, commands=commands_tx,
                                                held=held, reply=r), timeout=30)
            except Unavailable as exc:
                leader = exc.details.get("leader", "")
                if leader and leader != address:
                    log.info("following the leader", standby=address, leader=leader)
                    return leader
                raise
            if not isinstance(joined, Joined) or not isinstance(joined.reports,
                                                                 channels.Sender):
                raise ChannelError(f"expected Joined, got {type(joined).__name__}")
            self.fence.fence_after = joined.fence_after
            self._acknowledged(sent_at)
            self._reports = joined.reports
            self._epoch = joined.epoch
            self._learn_managers(joined.managers)
            self._scheduler = conn.sender
            log.info("joined", scheduler=address, node_id=self.node.id, epoch=joined.epoch,
                     held=len(held))
            self.joined.set()
            beat = asyncio.create_task(self._heartbeat(joined.reports, joined.epoch,
                                                       joined.heartbeat_interval))
            try:
                await self._execute(self.state.handle(SchedulerUp(self._sid())))
                stopping = asyncio.create_task(stop.wait())
                while True:
                    message_task = asyncio.ensure_future(commands_rx.recv())
                    await asyncio.wait({message_task, stopping},
                                       return_when=asyncio.FIRST_COMPLETED)
                    if stopping.done():
                        message_task.cancel()
                        return ""
                    message = message_task.result()  # raises when the session ends
                    await self._on_command(message)
            except channels.EndOfChannel:
                return ""
            finally:
                self.joined.clear()
                self._reports = None
                self._scheduler = None
                beat.cancel()
                for ack in list(self._acks):
                    ack.cancel()
                await asyncio.gather(beat, *self._acks, return_exceptions=True)

    async def _held_images(self) -> list[str]:
        """Tags and ids of the images this worker stores (none without a fetcher)."""
        if self.fetcher is None:
            return []
        images = await asyncio.to_thread(self.fetcher.store.images)
        names = [name for image in images for name in (*image.tags, image.id)]
        return names[:MAX_HELD_IMAGES]

    async def ensure_image(self, reference: str,
                           registry: RegistryOptions | None = None) -> None:
        """Have ``reference`` in this worker's store, from the cluster's store or its registry
        if missing (a container's image, or a build's base); ``registry``: the access to
        pull it with."""
        if self.supply is None:
            return  # this worker's driver runs no images
        scheduler = self._scheduler
        if scheduler is None:
            raise Unavailable(f"image {reference}: no scheduler session to fetch it from")
        image = await self.supply.ensure(reference, scheduler, registry)
        log.debug("image ready", reference=reference, image_id=image.id)
        if reference not in self._announced and image.id not in self._announced:
            await self._announce_images()

    async def _announce_images(self) -> None:
        """Tell the scheduler what this worker stores now, as the join did: a fetched image
        makes it a better place for the next container of that image."""
        images = await self._held_images()
        reports = self._reports
        if reports is None or images == self._announced:
            return  # the next join lists them
        self._announced = images
        with contextlib.suppress(ChannelError):
            await reports.send(NodeImages(node_id=self.node.id, epoch=self._epoch,
                                          images=images))

    def _held_volumes(self) -> list[VolumeInfo]:
        """This worker's named volumes as the scheduler keeps them (users are its to know)."""
        return [msgspec.structs.replace(info, users=[])
                for info in self.engine.volumes.every()][:MAX_NODE_VOLUMES]

    async def _announce_volumes(self) -> None:
        """A volume was made or removed: the scheduler places by where volumes are."""
        volumes = self._held_volumes()
        reports = self._reports
        if reports is None or volumes == self._announced_volumes:
            return  # the next join lists them
        self._announced_volumes = volumes
        with contextlib.suppress(ChannelError):
            await reports.send(NodeVolumes(node_id=self.node.id, epoch=self._epoch,
                                           volumes=volumes))

    async def _heartbeat(self, reports: channels.Sender, epoch: int, interval: float) -> None:
        while True:
            sent_at = fence_clock()
            reply_tx, reply_rx = channels.pipe(capacity=1)
            await reports.send(Heartbeat(node_id=self.node.id, epoch=epoch, reply=reply_tx))
            # Acknowledgements are awaited beside the beat, not in it: a slow one delays no
            # heartbeat, and one that never comes simply moves no deadline.
            ack = asyncio.create_task(self._await_ack(reply_rx, sent_at))
            self._acks.add(ack)
            ack.add_done_callback(self._acks.discard)
            await asyncio.sleep(interval)

    async def _await_ack(self, reply: channels.Receiver, sent_at: float) -> None:
        try:
            await reply.recv()  # Ok; a refusal raises
        except ShoalError:
            return
        finally:
            reply.close()
        self._acknowledged(sent_at)

    def _acknowledged(self, sent_at: float) -> None:
        self.fence.acknowledged(sent_at)
        self._contact.set()

    async def _keep_fence(self) -> None:
        """Kill the exclusive containers whenever the fence's deadline passes."""
        while True:
            self._contact.clear()
            deadline = self.fence.deadline()
            if deadline is None:
                await self._contact.wait()
                continue
            left = deadline - fence_clock()
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._contact.wait(), left)
                continue
            await self._fence_exclusive()
            await self._contact.wait()  # nothing exclusive starts until the leader answers

    async def _fence_exclusive(self) -> None:
        now = fence_clock()
        reason = self.fence.reason(now)
        for cid, record in list(self.engine.records.items()):
            if not record.spec.exclusive or record.state.status not in FENCEABLE:
                continue
            log.warning("fencing an exclusive container", container_id=cid,
                        generation=record.generation, reason=reason)
            try:
                await self.engine.fence(cid, reason)
            except NotFound:
                pass
            except ShoalError as exc:
                log.error("fencing failed", container_id=cid, error=str(exc))

    async def _on_command(self, message: object) -> None:
        if isinstance(message, Assign):
            if message.registry is not None and not self.state.holds(message.container_id,
                                                                      message.generation):
                self._pull_access[message.container_id] = message.registry
            event: Assigned | Revoked = Assigned(message.container_id, message.generation,
                                                 message.spec, self._sid())
        elif isinstance(message, Revoke):
            self._pull_access.pop(message.container_id, None)
            event = Revoked(message.container_id, message.generation, message.reason,
                            self._sid())
        elif isinstance(message, Managers):
            self._learn_managers(message.addresses)
            return
        elif isinstance(message, NetworkEndpoints):
            if self.on_endpoints is not None:
                try:
                    await self.on_endpoints(message.endpoints)
                except (ShoalError, OSError) as exc:
                    log.error("programming overlay endpoints failed", error=str(exc),
                              endpoints=len(message.endpoints))
            return
        else:
            log.warning("unexpected command", type=type(message).__name__)
            return
        await self._execute(self.state.handle(event))

    async def _execute(self, instructions: list[Instruction]) -> None:
        for instruction in instructions:
            if isinstance(instruction, Run | StopAndRemove | Reconnect):
                self._lanes.submit(instruction)
            elif isinstance(instruction, SendReport):
                await self._report(instruction)
            elif isinstance(instruction, Refuse):
                log.info("refused a stale assignment", container_id=instruction.container_id,
                         reason=instruction.reason)
                await self._send(instruction.container_id, instruction.generation,
                                 ContainerState(status="dead", error=instruction.reason))

    async def _report(self, report: SendReport) -> None:
        cid, generation = report.container_id, report.generation
        record = self.engine.records.get(cid)
        if record is not None and record.generation == generation:
            state = record.state
        elif self._lanes.pending_run(cid) == generation:
            # Accepted, its image still being fetched: "created" is what the state machine
            # holds, and the reconciler reads it as ``accepted``. "dead" would be false, and
            # final: the scheduler's view only moves forward, so the container would be failed
            # while it is about to start. Staying silent would leave a resent Assign unanswered.
            state = ContainerState(status="created")
        else:
            state = ContainerState(status="dead")
        await self._send(cid, generation, state)

    async def _prepare_run(self, run: Run) -> bool:
        """Fetch the run's image if this worker lacks it; False (reported) when that fails.
        Then wait for the container whose network it joins, if any, to run here."""
        try:
            await self.ensure_image(run.spec.image,
                                    self._pull_access.pop(run.container_id, None))
        except ShoalError as exc:
            self._run_failed(run, exc)
            await self._send(run.container_id, run.generation,
                             ContainerState(status="dead", error=str(exc)[:4096]))
            return False
        # --network container:NAME: NAME's own run may reach this node after this one.
        await wait_for_peer(self.engine, run.spec)
        return True

    async def _commit(self, instruction: LaneInstruction) -> None:
        match instruction:
            case Run(container_id=cid, generation=generation, spec=spec):
                if spec.exclusive and self.fence.due(fence_clock()):
                    reason = self.fence.reason(fence_clock())
                    log.warning("not starting an exclusive container", container_id=cid,
                                reason=reason)
                    await self._send(cid, generation, ContainerState(status="dead",
                                                                     error=reason))
                    return
                try:
                    if cid in self.engine.records:
                        await self.engine.remove(cid, force=True)
                    # The cluster's id is the container's name here: replicas share a spec
                    # name. Removal is the cluster's decision (its record must go too), never
                    # the engine's on its own: --rm is carried out through the scheduler.
                    labels = spec.labels if not spec.name or spec.name == cid else \
                        {**spec.labels, JOB_LABEL: spec.name}
                    named = msgspec.structs.replace(spec, name=cid, auto_remove=False,
                                                    labels=labels)
                    await self.engine.create(named, container_id=cid, generation=generation)
                    await self._send(cid, generation, self.engine.records[cid].state)
                    await self.engine.start(cid)
                except ShoalError as exc:
                    self._run_failed(instruction, exc)
                    await self._send(cid, generation,
                                     ContainerState(status="dead", error=str(exc)[:4096]))
            case Reconnect(container_id=cid, generation=generation, spec=spec):
                record = self.engine.records.get(cid)
                if record is None or record.generation != generation \
                        or self.on_networks is None:
                    return  # not made (its run failed or was superseded): nothing to connect
                await self.on_networks(record, list(spec.connected))
            case StopAndRemove(container_id=cid, reason=reason):
                log.info("stopping a copy", container_id=cid, reason=reason)
                try:
                    await self.engine.remove(cid, force=True)
                except NotFound:
                    pass
                except ShoalError as exc:
                    log.error("instruction failed", instruction="StopAndRemove",
                              container_id=cid, error=str(exc))

    @staticmethod
    def _run_failed(run: Run, exc: ShoalError) -> None:
        log.error("instruction failed", instruction="Run", container_id=run.container_id,
                  generation=run.generation, error=str(exc))

    def _reported(self, container_id: str, state: ContainerState) -> ContainerState:
        """``state`` as the scheduler hears it: a running container's ports as bound here."""
        record = self.engine.records.get(container_id)
        if record is None or state.status != "running" or state.ports:
            return state
        ports = self.engine.driver.published_ports(record)
        return msgspec.structs.replace(state, ports=ports) if ports else state

    async def _send(self, container_id: str, generation: int, state: ContainerState) -> None:
        reports = self._reports
        if reports is None:
            return  # reported in full at the next join (``held``)
        state = self._reported(container_id, state)
        with contextlib.suppress(ChannelError):
            await reports.send(ContainerReport(node_id=self.node.id, container_id=container_id,
                                               generation=generation, state=state))

    async def _watch_engine(self) -> None:
        """Container changes the engine sees (exits, restarts) become reports. Should this
        subscriber ever fall behind, it subscribes again and reports every container it holds
        as it is now: a change is never lost, at worst reported twice."""
        reader = channels.FeedReader(self.engine.events)
        try:
            while True:
                try:
                    async for event in reader:
                        if event.type == "volume":
                            await self._announce_volumes()
                        elif event.type == "container" and (
                                event.action in WATCHED_ACTIONS
                                or event.action.startswith(HEALTH_ACTION)):
                            await self._engine_changed(event.id)
                except EventsOverflow as exc:
                    log.warning("fell behind the engine's events; reporting every container",
                                error=str(exc))
                    reader.close()
                    # Subscribed again before looking: a change during the look is not lost.
                    reader = channels.FeedReader(self.engine.events)
                    for container_id in list(self.engine.records):
                        await self._engine_changed(container_id)
        finally:
            reader.close()

    async def _engine_changed(self, container_id: str) -> None:
        record = self.engine.records.get(container_id)
        if record is None or not self.state.holds(container_id, record.generation):
            return  # not ours, or an older copy going away while its successor waits
        await self._execute(self.state.handle(ContainerChanged(
            container_id, record.state.status, record.state.exit_code, self._sid())))
