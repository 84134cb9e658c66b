"""The container engine of one worker: Docker 1.3's model on a driver.

create → start → (running ⇄ restarting) → exited, then start again or remove. Each container
has a supervisor task that waits for its exit, records it, and asks ``restart.decide`` whether
and when to start it again. Records are saved on every change (written off the event loop; a
verb answers, and a signal is sent, only once what it changed is on disk), so a worker killed
with SIGKILL comes back, re-adopts what still runs, learns the exit of what ended meanwhile,
and applies the restart policies (live restore). Names are unique per worker; ids may be
abbreviated.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from pathlib import Path
from typing import Protocol

import msgspec
import structlog

from protocol import signals
from protocol.errors import (
    Conflict,
    InvalidArgument,
    InvalidSpec,
    NotFound,
    ShoalError,
    Unsupported,
)
from protocol.eventfeed import EventFeed
from protocol.observed import ContainerInfo, ContainerState, ContainerSummary, Event, EventType
from protocol.signals import parse_signal
from protocol.specs import DEFAULT_NETWORK_MODE, ContainerSpec, LogOptions, network_container
from protocol.validation import check_spec
from worker.engine.changes import LiveChanges
from worker.engine.container_io import LIVE, ContainerIO
from worker.engine.driver import Driver, ExitStatus
from worker.engine.faults import crash_point
from worker.engine.health_monitor import HealthMonitor, probe_of
from worker.engine.network_join import check_joinable, network_peer, wait_for_peer
from worker.engine.records import ContainerDisk, EngineContainer, ImageDefaults
from worker.engine.restart import (
    ExitFacts,
    Restart,
    RestartHistory,
    decide,
    start_on_worker_boot,
    started_by_hand,
)
from worker.engine.volume_use import EngineVolumes
from worker.metrics import WorkerMetrics

log = structlog.get_logger("shoal.engine")

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
DEFAULT_STOP_TIMEOUT = 10.0


class ImageResolver(Protocol):
    async def defaults(self, reference: str) -> ImageDefaults:
        """The image's config defaults; NotFound when this worker has no such image."""


class NoImages:
    """For drivers that run host commands (``process``): the image is only a label."""

    async def defaults(self, reference: str) -> ImageDefaults:
        return ImageDefaults()


class Engine(ContainerIO):
    def __init__(self, state_dir: Path, driver: Driver, *, images: ImageResolver | None = None,
                 node_id: str = "", log_max_size: int = 0, log_max_file: int = 1,
                 metrics: WorkerMetrics | None = None) -> None:
        self.state_dir = state_dir
        self.metrics = metrics or WorkerMetrics()
        self.disk = ContainerDisk(state_dir / "containers")
        self.driver = driver
        self.images: ImageResolver = images or NoImages()
        self.node_id = node_id
        self.events = EventFeed()
        self.log_max_size = log_max_size
        self.log_max_file = log_max_file
        self.records: dict[str, EngineContainer] = {}
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._exit_counts: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._background: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        # The last window size a client set on a container's terminal: its next start has it
        # from the beginning (``run -t`` attaches, sets it, then starts).
        self._window_sizes: dict[str, tuple[int, int]] = {}
        self.health = HealthMonitor(self)
        self.volumes = EngineVolumes(self)
        self.changes = LiveChanges(self)

    # --- start-up and shutdown -------------------------------------------------------------------
    async def open(self) -> None:
        """Load every record; re-adopt live containers, settle the ones that ended meanwhile.

        What a crash cut short is settled before anything is reported: a create that never
        finished (never answered) is removed with whatever its driver made, and a container
        whose record says it does not run (created, exited: a start cut short) has whatever
        the driver still holds for it ended (its processes killed, its runtime state deleted).
        """
        joiners: list[EngineContainer] = []  # started after the containers they join
        for record in self.disk.load_all():
            if record.creating:
                log.info("removing a create cut short", container_id=record.id)
                await self.driver.remove(record)
                self.disk.remove(record.id)
                continue
            self.records[record.id] = record
            self._exited[record.id] = asyncio.Event()
            if record.state.status not in LIVE:
                self._exited[record.id].set()
                if await self.driver.end_leftovers(record):
                    log.warning("ended processes of a container that was not running",
                                container_id=record.id, status=record.state.status)
                if start_on_worker_boot(record.spec.restart, self._history(record), False) \
                        and record.desired == "running":
                    if network_container(record.spec.network):
                        joiners.append(record)
                    else:
                        await self._launch(record)
                continue
            if self.driver.running(record):
                log.info("re-adopted", container_id=record.id, pid=record.state.pid)
                if record.state.status == "running":
                    self.health.begin(record, fresh=False)  # its checks go on where they were
            else:
                log.info("ended while the worker was away", container_id=record.id)
            # Either way the supervisor learns the exit (now or later) and applies the policy.
            self._supervise(record)
        for record in joiners:
            try:
                await self._launch(record)
            except ShoalError as exc:  # its peer did not come back: it stays exited
                log.warning("not restarted", container_id=record.id, error=str(exc))
                self._set_exited(record, record.state.exit_code or 0, time.time(), str(exc))
        await self.disk.durable()

    async def close(self) -> None:
        """Stop supervising; the containers keep running for the next worker process."""
        self.health.close()
        for task in list(self._supervisors.values()):
            task.cancel()
        await asyncio.gather(*self._supervisors.values(), return_exceptions=True)
        self._supervisors.clear()
        await self.disk.durable()
        await self.driver.close()

    # --- lookups ---------------------------------------------------------------------------------
    def find(self, ref: str) -> EngineContainer:
        """By full id, unique id prefix, or name."""
        if ref in self.records:
            return self.records[ref]
        by_name = [r for r in self.records.values() if r.name == ref.lstrip("/")]
        if by_name:
            return by_name[0]
        matches = [r for r in self.records.values() if r.id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidArgument(f"{ref!r} matches {len(matches)} containers; give more of "
                                  "the id")
        raise NotFound(f"no such container: {ref}", details={"container": ref})

    # --- verbs -----------------------------------------------------------------------------------
    async def create(self, spec: ContainerSpec, *, container_id: str | None = None,
                     generation: int = 0) -> EngineContainer:
        check_spec(spec)  # before anything is made: the same refusal as the CLI's and scheduler's
        if not self.driver.mounts and any(m.type != "bind" for m in spec.mounts):
            raise Unsupported(f"the {self.driver.name} driver does not isolate containers: "
                              "named volumes and tmpfs mounts need the native driver")
        check_joinable(spec, self.driver, self.find)
        if spec.network == DEFAULT_NETWORK_MODE:
            spec = msgspec.structs.replace(spec, network=self.driver.default_network)
            try:
                check_spec(spec)
            except InvalidSpec as exc:  # -p on a process-driver worker's host network
                raise InvalidSpec(f"{exc} (the default network of this worker's "
                                  f"{self.driver.name} driver is {spec.network})",
                                  details=exc.details) from None
        name = spec.name.lstrip("/")
        if name and not NAME_RE.match(name):
            raise InvalidArgument(f"invalid container name {name!r}: use letters, digits, "
                                  "'_', '.', '-', starting with a letter or digit")
        new_id = container_id or os.urandom(32).hex()
        name = name or f"shoal_{new_id[:12]}"
        if any(r.name == name for r in self.records.values()):
            raise Conflict(f"the name {name!r} is already in use", details={"name": name})
        if new_id in self.records:
            raise Conflict(f"container {new_id} already exists")
        image = await self.images.defaults(spec.image)
        record = EngineContainer(id=new_id, name=name, spec=spec, image=image,
                                 created_at=time.time(), driver=self.driver.name,
                                 generation=generation, creating=True)
        if not record.argv():
            raise InvalidArgument("no command: give one, or an image that has Cmd/Entrypoint")
        self.disk.save(record)  # first, so a crash in prepare leaves a record to remove
        await self.disk.durable()
        try:
            await self.volumes.attach(record)
            record.driver_data = await self.driver.prepare(record)
            await self.volumes.fill(record)
        except BaseException:
            self.disk.remove(new_id)
            raise
        crash_point("create.prepared")
        record.creating = False
        self.disk.save(record)
        await self.disk.durable()
        self.records[new_id] = record
        self._exited[new_id] = asyncio.Event()
        self._exited[new_id].set()
        self._announce("container", "create", new_id, name=name, image=spec.image)
        return record

    async def start(self, ref: str) -> EngineContainer:
        record = self.find(ref)
        async with self._lock(record.id):
            if record.state.status == "paused":
                raise Conflict("Cannot start a paused container, try unpause instead.")
            if record.state.status in LIVE:
                return record
            history = started_by_hand(self._history(record))
            record.manually_stopped = history.manually_stopped
            record.last_delay = history.last_delay
            await self._launch(record)
            await self.disk.durable()
        return record

    async def stop(self, ref: str, timeout: float | None = None) -> EngineContainer:
        record = self.find(ref)
        async with self._lock(record.id):
            record.manually_stopped = True
            record.desired = "stopped"
            self.disk.save(record)
            if record.state.status == "restarting":
                self._cancel_supervisor(record.id)
                self._set_exited(record, record.state.exit_code or 0, time.time())
            await self.disk.durable()  # known as stopped by hand before it is signalled
            if record.state.status not in ("running", "paused"):
                return record
            grace = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
            if record.spec.stop_timeout is not None and timeout is None:
                grace = record.spec.stop_timeout
            await self.driver.signal(record, parse_signal(record.stop_signal()))
            await self.changes.thaw_to_stop(record)
            if not await self._wait_exit(record.id, grace):
                await self.driver.signal(record, signals.SIGKILL, all_processes=True)
                await self._wait_exit(record.id, None)
            await self.disk.durable()
        self._announce("container", "stop", record.id, name=record.name)
        return record

    async def fence(self, ref: str, reason: str) -> EngineContainer:
        """Kill the container at once and for good: SIGKILL to all its processes, no stop
        signal and no grace (the fence's deadline has passed: a grace would let it run into
        the time the scheduler may start a replacement), no restart whatever its policy.
        ``reason`` is kept as the exit's error."""
        record = self.find(ref)
        async with self._lock(record.id):
            record.manually_stopped = True  # the restart policy must not bring it back
            record.desired = "stopped"
            self.disk.save(record)
            await self.disk.durable()
            if record.state.status == "restarting":
                self._cancel_supervisor(record.id)
                self._set_exited(record, record.state.exit_code or 0, time.time(), reason)
            elif record.state.status in ("running", "paused"):
                await self.driver.signal(record, signals.SIGKILL, all_processes=True)
                await self._wait_exit(record.id, None)
                record.state = msgspec.structs.replace(record.state, error=reason)
                self.disk.save(record)
            await self.disk.durable()
        self._announce("container", "kill", record.id, name=record.name,
                       signal=str(int(signals.SIGKILL)))
        return record

    async def kill(self, ref: str, sig: str | int = "KILL") -> EngineContainer:
        record = self.find(ref)
        number = parse_signal(sig)
        if record.state.status not in ("running", "paused"):
            raise Conflict(f"container {record.name} is not running")
        stopping = number in (signals.SIGKILL, parse_signal(record.stop_signal()))
        if stopping:
            record.manually_stopped = True  # Docker's rule: these kills count as a stop
            record.desired = "stopped"
            self.disk.save(record)
            await self.disk.durable()
        await self.driver.signal(record, number)
        if stopping:  # another signal waits, pending, for the unpause
            await self.changes.thaw_to_stop(record)
        self._announce("container", "kill", record.id, name=record.name,
                            signal=str(number))
        return record

    async def restart(self, ref: str, timeout: float | None = None) -> EngineContainer:
        await self.stop(ref, timeout)
        record = await self.start(ref)
        self._announce("container", "restart", record.id, name=record.name)
        return record

    async def remove(self, ref: str, *, force: bool = False) -> None:
        record = self.find(ref)
        async with self._lock(record.id):
            if record.state.status in LIVE:
                if not force:
                    raise Conflict(f"container {record.name} is {record.state.status}: stop "
                                   "it first or remove it with force")
                record.manually_stopped = True
                record.desired = "stopped"
                self._cancel_supervisor(record.id)
                if record.state.status in ("running", "paused"):  # SIGKILL thaws it too
                    await self.driver.signal(record, signals.SIGKILL, all_processes=True)
                    status = await self.driver.wait(record)
                    self._set_exited(record, status.exit_code, status.finished_at)
                else:  # between two runs, waiting out the backoff: nothing runs
                    self._set_exited(record, record.state.exit_code or 0, time.time())
            await self.driver.cleanup(record)
            await self.driver.remove(record)
            self.disk.remove(record.id)
            await self.disk.durable()
            self.records.pop(record.id, None)
            self._exited.pop(record.id, None)
            self._window_sizes.pop(record.id, None)
        self._locks.pop(record.id, None)
        self._notify()
        self._announce("container", "destroy", record.id, name=record.name)

    async def wait(self, ref: str, condition: str = "not-running") -> ContainerState:
        """Docker's wait conditions: not-running (now or when it stops), next-exit, removed."""
        record = self.find(ref)
        exits = self._exit_counts.get(record.id, 0)
        async with self._changed:
            if condition == "next-exit":
                await self._changed.wait_for(
                    lambda: self._exit_counts.get(record.id, 0) > exits
                    or record.id not in self.records)
            elif condition == "removed":
                await self._changed.wait_for(lambda: record.id not in self.records)
            elif condition == "healthy":
                if record.state.health is None and probe_of(record) is None:
                    raise Conflict(f"container {record.name} has no healthcheck")
                await self._changed.wait_for(
                    lambda: (record.state.health is not None
                             and record.state.health.status == "healthy"
                             and record.state.status == "running")
                    or record.state.status not in ("running", "restarting", "created")
                    or record.id not in self.records)
                if record.id not in self.records or record.state.status != "running":
                    raise Conflict(f"container {record.name} stopped before it was healthy")
            else:
                await self._changed.wait_for(
                    lambda: record.state.status not in LIVE
                    or record.id not in self.records)
        return record.state

    def ps(self, *, all: bool = False) -> list[ContainerSummary]:
        rows = []
        for record in sorted(self.records.values(), key=lambda r: r.created_at, reverse=True):
            if not all and record.state.status not in LIVE:
                continue
            rows.append(ContainerSummary(
                id=record.id, name=record.name, image=record.spec.image,
                command=" ".join(record.argv()), created_at=record.created_at,
                state=record.state, node_id=self.node_id, labels=record.spec.labels,
                ports=self.driver.published_ports(record),
                networks=self.driver.endpoints(record)))
        return rows

    def inspect(self, ref: str) -> ContainerInfo:
        record = self.find(ref)
        return ContainerInfo(
            id=record.id, name=record.name, spec=record.spec, state=record.state,
            image_id=record.image.id, created_at=record.created_at,
            node_id=self.node_id, generation=record.generation, runtime=record.driver,
            storage_driver=record.driver_data.get("storage_driver", ""),
            details={**record.driver_data, "log_path": str(self.disk.log_path(record.id)),
                     **self._network_details(record),
                     **{f"volume.{name}": path for name, path in record.volumes.items()},
                     "restart_policy": record.spec.restart.name,
                     "manually_stopped": str(record.manually_stopped).lower()},
            networks=self.driver.endpoints(record))

    def _network_details(self, record: EngineContainer) -> dict[str, str]:
        """The container's address and bound ports, for inspect (``shoal port`` reads them)."""
        details = {}
        address = self.driver.address(record)
        if address:
            details["ip_address"] = address
        ports = self.driver.published_ports(record)
        if ports:
            details["ports"] = ",".join(
                f"{p.container_port}/{p.protocol}->{p.host_ip or '0.0.0.0'}:{p.host_port}"
                for p in ports)
        return details

    async def top(self, ref: str) -> list[int]:
        record = self.find(ref)
        if record.state.status not in ("running", "paused"):
            raise Conflict(f"container {record.name} is not running")
        return await self.driver.processes(record)

    def health_changed(self, record: EngineContainer, status: str) -> None:
        """The health monitor saw a new status: Docker's event, and waiters woken."""
        self._announce("container", f"health_status: {status}", record.id, name=record.name,
                       image=record.spec.image)
        self._notify()

    def _announce(self, type: EventType, action: str, id: str, **attributes: str) -> None:
        """Publish one of Docker's container events, stamped with this node and the time now."""
        self.events.publish(Event(type=type, action=action, id=id, time=time.time(),
                                  node_id=self.node_id, attributes=attributes))

    # --- supervision -----------------------------------------------------------------------------
    async def _launch(self, record: EngineContainer) -> None:
        peer = network_peer(record, self.find)  # at each start: Docker's rule
        # The container's --log-opt over the worker's --log-max-size/--log-max-file, option by
        # option, as Docker merges a container's log options over the daemon's.
        options = record.spec.log_options or LogOptions()
        started = await self.driver.start(record, str(self.disk.log_path(record.id)),
                                          max_size=options.max_size or self.log_max_size,
                                          max_file=options.max_file or self.log_max_file,
                                          compress=options.compress,
                                          console_size=self._window_sizes.get(record.id),
                                          network_peer=peer)
        record.state = ContainerState(status="running", pid=started.pid,
                                      started_at=started.started_at,
                                      restart_count=record.restart_count,
                                      health=record.state.health)
        record.desired = "running"
        self.disk.save(record)
        self.health.begin(record, fresh=True)
        self._exited[record.id].clear()
        self.metrics.container_starts.inc()
        self._announce("container", "start", record.id, name=record.name)
        self._supervise(record)
        self._notify()

    def _supervise(self, record: EngineContainer) -> None:
        task = asyncio.get_running_loop().create_task(self._watch(record))
        self._supervisors[record.id] = task
        task.add_done_callback(functools.partial(self._forget_supervisor, record.id))

    def _forget_supervisor(self, container_id: str, task: asyncio.Task[None]) -> None:
        if self._supervisors.get(container_id) is task:
            del self._supervisors[container_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("supervisor failed", container_id=container_id,
                      error=repr(task.exception()))

    def _cancel_supervisor(self, container_id: str) -> None:
        task = self._supervisors.pop(container_id, None)
        if task is not None:
            task.cancel()

    async def _watch(self, record: EngineContainer) -> None:
        status = await self.driver.wait(record)
        await self._settle_exit(record, status)

    async def _settle_exit(self, record: EngineContainer, status: ExitStatus) -> None:
        ran_for = max(0.0, status.finished_at - record.state.started_at)
        manual = record.manually_stopped
        self._set_exited(record, status.exit_code, status.finished_at, status.error,
                         status.oom_killed)
        self.metrics.exited(status.exit_code, status.oom_killed)
        self._announce("container", "die", record.id, name=record.name,
                            exitCode=str(status.exit_code))
        await self.driver.cleanup(record)
        decision = decide(record.spec.restart, self._history(record),
                          ExitFacts(status.exit_code, ran_for, manual_stop=manual,
                                    at=status.finished_at))
        record.restart_count = decision.history.restart_count
        record.last_delay = decision.history.last_delay
        record.restarted_at = list(decision.history.restarted_at)
        record.manually_stopped = decision.history.manually_stopped
        if not isinstance(decision, Restart):
            record.desired = "stopped"
            self.disk.save(record)
            if record.spec.auto_remove and record.id in self.records:
                await self.remove(record.id, force=True)
            return
        record.state = ContainerState(
            status="restarting", exit_code=status.exit_code, finished_at=status.finished_at,
            started_at=record.state.started_at, restart_count=record.restart_count,
            health=record.state.health)
        self.disk.save(record)
        await asyncio.sleep(decision.delay)  # the restart backoff itself
        # A peer whose network it joins, restarting beside it (at a worker's return, say),
        # is waited for: its start comes first.
        await wait_for_peer(self, record.spec)
        if record.id in self.records and not record.manually_stopped:
            try:
                await self._launch(record)
            except (Conflict, NotFound) as exc:  # the container it joins the network of
                self._set_exited(record, status.exit_code, time.time(), str(exc))
                return
            self.metrics.container_restarts.inc()
            self._announce("container", "restart", record.id, name=record.name)

    def _set_exited(self, record: EngineContainer, exit_code: int, finished_at: float,
                    error: str = "", oom_killed: bool = False) -> None:
        record.state = ContainerState(
            status="exited", pid=0, exit_code=max(-1, min(exit_code, 255)), error=error,
            oom_killed=oom_killed, started_at=record.state.started_at, finished_at=finished_at,
            restart_count=record.restart_count, health=self.health.end(record))
        self.disk.save(record)
        self._exit_counts[record.id] = self._exit_counts.get(record.id, 0) + 1
        event = self._exited.get(record.id)
        if event is not None:
            event.set()
        self._notify()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(wake())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _wait_exit(self, container_id: str, timeout: float | None) -> bool:
        event = self._exited[container_id]
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _history(self, record: EngineContainer) -> RestartHistory:
        return RestartHistory(record.restart_count, record.last_delay, record.manually_stopped,
                              tuple(record.restarted_at))

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())
