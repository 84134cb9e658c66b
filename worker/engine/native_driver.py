"""The ``native`` driver: containers from images, on shoal's own OCI runtime.

prepare: the image's layers become a rootfs (overlay or copy storage driver) and the record an
OCI bundle; start/kill/exec/wait go through the runtime helper (one single-threaded process per
host that forks containers, reaps them and outlives the worker); output goes to raw append-only
files the worker copies into json-file logs, so neither a container nor its output depends on
the worker staying up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import structlog

from protocol.errors import NotFound, ShoalError
from protocol.observed import EndpointSettings, ResourceSample
from protocol.specs import (
    LogOptions,
    NetworkAttachment,
    NetworkSpec,
    PortMapping,
    Resources,
    network_container,
)
from worker.engine.bundle import (
    hostname_of,
    live_limits,
    oci_config,
    resolve_user,
    resource_limits,
)
from worker.engine.driver import (
    Driver,
    ExecPipes,
    ExecProcess,
    ExecRequest,
    ExitStatus,
    Started,
)
from worker.engine.faults import crash_point
from worker.engine.native_exec import NativeExec
from worker.engine.network_join import join_peer_network
from worker.engine.rawlog import RawLogCopier
from worker.engine.records import EngineContainer, ImageDefaults
from worker.engine.resource_sample import read_sample
from worker.engine.terminal import copy_terminal, set_window_size
from worker.images import ImageStore, LayerLimits
from worker.network.files import HOST_RESOLV
from worker.network.manager import Networks
from worker.runtime import cgroups, resources_update
from worker.runtime.client import RuntimeHelper
from worker.runtime.errors import RuntimeFailure
from worker.runtime.ops import Runtime
from worker.runtime.state import StateDir, proc_start_time
from worker.storage import StorageDriver, choose_driver

log = structlog.get_logger("shoal.engine")

COPY_EVERY = 0.05  # how often new output is copied into the json-file log


def cgroup_scope(state_dir: Path) -> str:
    """The cgroup directory (under ``shoal/``) that holds one worker's containers."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]


class NativeImages:
    """The engine's view of the image store: config defaults by reference."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    async def defaults(self, reference: str) -> ImageDefaults:
        image = await asyncio.to_thread(self.store.get, reference)
        d = image.defaults
        return ImageDefaults(id=image.id, entrypoint=list(d.entrypoint), cmd=list(d.cmd),
                             env=list(d.env), workdir=d.working_dir, user=d.user,
                             stop_signal=d.stop_signal, os=image.config.os,
                             arch=image.config.architecture, healthcheck=d.healthcheck,
                             volumes=list(d.volumes))


class NativeDriver(Driver):
    name = "native"
    default_network = "bridge"

    def __init__(self, state_dir: Path, store: ImageStore, storage: StorageDriver,
                 runtime: RuntimeHelper, storage_reason: str = "",
                 resolv_conf: Path = HOST_RESOLV) -> None:
        self.state_dir = state_dir
        self.store = store
        self.storage = storage
        self.storage_reason = storage_reason
        self.runtime = runtime
        self.runtime_root = state_dir / "runtime"
        # One worker's containers live under shoal/<scope>/ in each cgroup hierarchy.
        self.cgroup_scope = cgroup_scope(state_dir)
        self._copiers: dict[str, RawLogCopier] = {}
        self._copying: dict[str, asyncio.Task[None]] = {}
        # Our end of a running container's input: the pty master (``tty``) or the write end
        # of its stdin pipe (``stdin_open``). Only this worker process holds them.
        self._inputs: dict[str, int] = {}
        self._terminal_copies: dict[str, asyncio.Task[None]] = {}
        self._dropping: set[asyncio.Task[None]] = set()  # drop_input requests under way
        self.networks = Networks(state_dir, self.cgroup_scope, resolv_conf)

    @classmethod
    async def open(cls, state_dir: Path, *, storage: str | None = None,
                   image_limits: LayerLimits | None = None,
                   resolv_conf: Path = HOST_RESOLV) -> NativeDriver:
        """``resolv_conf``: where the containers' resolvers find the host's resolvers."""
        store = ImageStore(state_dir / "images", limits=image_limits)
        await asyncio.to_thread(store.recover)
        chosen, reason = await asyncio.to_thread(choose_driver, state_dir / "storage", store,
                                                 storage)
        await asyncio.to_thread(chosen.recover)
        runtime = await RuntimeHelper.ensure(state_dir / "runtime")
        driver = cls(state_dir, store, chosen, runtime, reason, resolv_conf)
        containers = state_dir / "containers"
        live = {d.name for d in containers.iterdir() if (d / "container.json").exists()} \
            if containers.is_dir() else set()
        await driver.networks.open(live)
        for container_id in sorted(live):  # running ones: resolvers, port proxies, names
            pid = driver._running_pid(container_id)
            if pid is not None:
                await driver.networks.resume(container_id, pid)
        return driver

    def _running_pid(self, container_id: str) -> int | None:
        try:
            saved = StateDir(self.runtime_root, container_id).load()
        except (ShoalError, OSError, ValueError):
            return None
        return saved.pid if proc_start_time(saved.pid) == saved.pid_start else None

    def _dir(self, record: EngineContainer) -> Path:
        return self.state_dir / "containers" / record.id

    async def prepare(self, record: EngineContainer) -> dict[str, str]:
        image = await asyncio.to_thread(self.store.get, record.spec.image)
        info = await asyncio.to_thread(self.storage.prepare, record.id, image)
        try:
            bundle = self._dir(record) / "bundle"
            bundle.mkdir(parents=True, exist_ok=True)
            network_files: list[dict[str, object]] = []
            # On the host's network: the host's files; on another's, that one's (at start).
            if record.spec.network != "host" and not network_container(record.spec.network):
                network_files = await self.networks.prepare(
                    record.id, record.name, record.spec, hostname_of(record),
                    self.network_dir(record.id), list(image.defaults.exposed_ports))
            config = oci_config(record, Path(info.path), cgroup_scope=self.cgroup_scope,
                                extra_mounts=network_files)
            tmp = bundle / "config.json.tmp"
            tmp.write_text(json.dumps(config, indent=1))
            os.replace(tmp, bundle / "config.json")
        except BaseException:
            await self.networks.release(record.id)
            await asyncio.to_thread(self.storage.remove, record.id)
            raise
        return {"storage_driver": self.storage.name, "rootfs": str(info.path),
                "bundle": str(bundle), **{k: str(v) for k, v in info.details.items()}}

    async def start(self, record: EngineContainer, log_path: str, *, max_size: int = 0,
                    max_file: int = 1, compress: bool = False,
                    console_size: tuple[int, int] | None = None,
                    network_peer: EngineContainer | None = None) -> Started:
        await self.cleanup(record)
        if network_peer is not None:
            await asyncio.to_thread(self._join_network, record, network_peer)
        # Its files are made (opened with O_CREAT, directories made) off the event loop: on a
        # busy disk that can take as long as an fsync, and a burst of starts queues behind it.
        copier = await asyncio.to_thread(self._copier, record, log_path, max_size, max_file,
                                         compress)
        out, err = await asyncio.to_thread(copier.sinks)
        stdin_r, stdin_w = os.pipe() if record.spec.stdin_open and not record.spec.tty \
            else (None, None)
        try:  # the runtime's own typed errors (bundle invalid, create failed at step X) go on
            process = await self.runtime.create(record.id, self._dir(record) / "bundle",
                                                stdin=stdin_r, stdout=out, stderr=err)
        except BaseException:
            os.close(out)
            if stdin_w is not None:
                os.close(stdin_w)
            raise
        finally:
            os.close(err)
            if stdin_r is not None:
                os.close(stdin_r)
        try:  # its network before its program runs (the init waits at the gate meanwhile)
            if network_peer is None:
                await self.networks.attach(record.id, process.pid)
        except BaseException:
            os.close(out)
            if stdin_w is not None:
                os.close(stdin_w)
            await self.cleanup(record)
            raise
        if process.pty_master is not None:  # the terminal's output goes to stdout's raw file
            self._inputs[record.id] = process.pty_master
            if console_size is not None:  # before start: the command never sees 0x0
                set_window_size(process.pty_master, *console_size)
            self._terminal_copies[record.id] = asyncio.get_running_loop().create_task(
                copy_terminal(os.dup(process.pty_master), out))
        else:
            os.close(out)
            if stdin_w is not None:
                self._inputs[record.id] = stdin_w
        if record.id in self._inputs:
            # The helper outlives this worker: with its copy, a worker restart neither hangs
            # up the terminal nor ends the stdin; the next worker takes the input back.
            await self.runtime.keep_input(record.id, self._inputs[record.id])
        crash_point("start.runtime-created")
        await self.runtime.start(record.id)
        crash_point("start.runtime-started")
        self._copying[record.id] = asyncio.get_running_loop().create_task(
            self._copy_until_cancelled(copier))
        return Started(process.pid, time.time())

    def _join_network(self, record: EngineContainer, peer: EngineContainer) -> None:
        """Into the bundle, for this start: the peer's network namespace, hostname and
        network files (``network_join.join_peer_network``)."""
        join_peer_network(self._dir(record) / "bundle" / "config.json", peer,
                          self.network_dir(peer.id), self.state_dir / "containers")

    def _copier(self, record: EngineContainer, log_path: str, max_size: int,
                max_file: int, compress: bool) -> RawLogCopier:
        copier = self._copiers.get(record.id)
        if copier is None:
            copier = RawLogCopier(self._dir(record) / "raw", Path(log_path), max_size=max_size,
                                  max_file=max_file, compress=compress,
                                  raw_chunks=record.spec.tty)
            self._copiers[record.id] = copier
        return copier

    @staticmethod
    async def _copy_until_cancelled(copier: RawLogCopier) -> None:
        while True:
            await asyncio.to_thread(copier.pump)
            await asyncio.sleep(COPY_EVERY)

    async def wait(self, record: EngineContainer) -> ExitStatus:
        if record.id not in self._copying:  # re-adopted after a worker restart
            # The container's own log options still hold (the worker's defaults are the
            # engine's, which re-adoption does not pass).
            options = record.spec.log_options or LogOptions()
            copier = self._copier(record, str(self._dir(record) / f"{record.id}-json.log"),
                                  options.max_size, options.max_file or 1, options.compress)
            await self._take_input_back(record, copier)
            self._copying[record.id] = asyncio.get_running_loop().create_task(
                self._copy_until_cancelled(copier))

        code: int | None = None
        try:
            code = (await self.runtime.wait(record.id)).code
            error = "" if code is not None else \
                "the exit status was lost (the runtime helper that reaped it had died)"
        except RuntimeFailure as exc:
            error = f"the runtime lost the container: {exc}"
        terminal = self._terminal_copies.pop(record.id, None)
        if terminal is not None:  # ends at EIO: every process that held the pty has exited
            await asyncio.gather(terminal, return_exceptions=True)
        self._close_input(record)
        code = 255 if code is None else code
        oom_killed = self._oom_killed(record, code)  # its cgroups say, before they go
        # All before anyone learns of the exit, side by side: the last output copied, its
        # veths deleted (the kernel frees a dead namespace's only later; ~15 ms of RCU grace
        # periods), the runtime's container deleted (the engine's cleanup next), and the
        # files of one the engine removes next (--rm): its removal finds them gone.
        leaving = [self._remove_files(record)] if _removed_at_exit(record) else []
        await asyncio.gather(self._stop_copying(record, discard=True),
                             self.networks.detach(record.id), self._delete_in_runtime(record),
                             *leaving)
        return ExitStatus(code, time.time(), oom_killed=oom_killed, error=error)

    async def _take_input_back(self, record: EngineContainer, copier: RawLogCopier) -> None:
        """A container started by an earlier worker: its input, kept by the runtime helper
        (and a terminal's output copied again into the raw log, as at start)."""
        if not (record.spec.tty or record.spec.stdin_open) or record.id in self._inputs:
            return
        try:
            fd = await self.runtime.take_input(record.id)
        except RuntimeFailure:
            return  # a helper that restarted too keeps nothing: no input any more
        if fd is None:
            return
        self._inputs[record.id] = fd
        if record.spec.tty:
            out, err = copier.sinks()
            os.close(err)
            self._terminal_copies[record.id] = asyncio.get_running_loop().create_task(
                copy_terminal(os.dup(fd), out))

    def input(self, record: EngineContainer) -> int | None:
        return self._inputs.get(record.id)

    def close_input(self, record: EngineContainer) -> None:
        if not record.spec.tty and record.id in self._inputs:
            self._close_input(record)
            # The helper's copy too, or the container never reads EOF.
            task = asyncio.get_running_loop().create_task(self._drop_kept_input(record.id))
            self._dropping.add(task)
            task.add_done_callback(self._dropping.discard)

    async def _drop_kept_input(self, container_id: str) -> None:
        with contextlib.suppress(RuntimeFailure):
            await self.runtime.drop_input(container_id)

    def _close_input(self, record: EngineContainer) -> None:
        fd = self._inputs.pop(record.id, None)
        if fd is not None:
            os.close(fd)

    def resize(self, record: EngineContainer, rows: int, cols: int) -> None:
        fd = self._inputs.get(record.id)
        if fd is not None and record.spec.tty:
            set_window_size(fd, rows, cols)

    def _oom_killed(self, record: EngineContainer, code: int) -> bool:
        return code == 137 and record.spec.resources.memory > 0 and self._oom_events(record)

    def _oom_events(self, record: EngineContainer) -> bool:
        with contextlib.suppress(ShoalError, OSError, ValueError):
            saved = StateDir(self.runtime_root, record.id).load()
            for directory in saved.cgroup_dirs:
                control = Path(directory) / "memory.oom_control"
                if control.exists():
                    for line in control.read_text().splitlines():
                        if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                            return True
        return False

    async def pause(self, record: EngineContainer) -> None:
        await asyncio.to_thread(Runtime(self.runtime_root).pause, record.id)

    async def resume(self, record: EngineContainer) -> None:
        await asyncio.to_thread(Runtime(self.runtime_root).resume, record.id)

    async def change_limits(self, record: EngineContainer, before: Resources) -> None:
        await asyncio.to_thread(self._change_limits, record, before)

    def _change_limits(self, record: EngineContainer, before: Resources) -> None:
        """Into the live cgroups first (the kernel may refuse, say a memory limit below what
        the container uses: then nothing has changed), then into the bundle the next start
        reads."""
        pid = self._running_pid(record.id)
        if pid is not None:
            saved = StateDir(self.runtime_root, record.id).load()
            resources_update.apply(saved.cgroup_dirs, live_limits(before, record.spec.resources))
        path = self._dir(record) / "bundle" / "config.json"
        config = json.loads(path.read_text())
        resources = config.setdefault("linux", {}).setdefault("resources", {})
        for section in ("memory", "cpu", "pids"):
            resources.pop(section, None)
        resources.update(resource_limits(record.spec.resources))
        tmp = path.with_name("config.json.tmp")
        tmp.write_text(json.dumps(config, indent=1))
        os.replace(tmp, path)

    async def sample(self, record: EngineContainer) -> ResourceSample:
        def read() -> ResourceSample:
            saved = StateDir(self.runtime_root, record.id).load()
            return read_sample(saved.cgroup_dirs, saved.pid,
                               own_network=record.spec.network != "host")
        return await asyncio.to_thread(read)

    async def renamed(self, record: EngineContainer) -> None:
        await self.networks.rename(record.id, record.name)

    async def rootfs(self, record: EngineContainer) -> str | None:
        info = await asyncio.to_thread(self.storage.mount, record.id)
        return str(info.path)

    def running(self, record: EngineContainer) -> bool:
        return self._running_pid(record.id) is not None

    async def signal(self, record: EngineContainer, signum: int, *, all_processes: bool = False
                     ) -> None:
        try:
            await self.runtime.kill(record.id, signum, all_processes=all_processes)
        except RuntimeFailure:
            if self.running(record):
                raise

    async def processes(self, record: EngineContainer) -> list[int]:
        return await self.runtime.ps(record.id)

    async def exec(self, record: EngineContainer, request: ExecRequest) -> ExecProcess:
        rootfs = Path(record.driver_data.get("rootfs", "/nonexistent"))
        uid, gid, _ = resolve_user(request.user, rootfs)
        ours: list[int] = []  # our ends, closed if the exec fails
        theirs: list[int] = []  # the process's ends, always closed here once it has them
        try:
            if request.tty:
                process = await self.runtime.exec(
                    record.id, request.argv, env=record.env() + request.env, cwd=request.cwd,
                    uid=uid, gid=gid, tty=True, console_size=request.console_size)
                if process.pty_master is None:
                    raise RuntimeFailure("the runtime gave no pty for a tty exec")
                ours.append(process.pty_master)
                stdin = os.dup(process.pty_master) if request.stdin else None
                handle = NativeExec(self.runtime, record.id, pid=process.pid, stdin=stdin,
                                    stdout=process.pty_master, stderr=None, tty=True)
                return handle
            pipes = ExecPipes.open(request, ours, theirs)
            process = await self.runtime.exec(
                record.id, request.argv, env=record.env() + request.env, cwd=request.cwd,
                uid=uid, gid=gid, stdin=pipes.stdin, stdout=pipes.stdout, stderr=pipes.stderr)
            return NativeExec(self.runtime, record.id, pid=process.pid, stdin=pipes.stdin_ours,
                              stdout=pipes.stdout_ours, stderr=pipes.stderr_ours, tty=False)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)

    async def _stop_copying(self, record: EngineContainer, *, discard: bool) -> None:
        """Stop the output copier after a last copy; with ``discard`` the run's raw files go
        (everything in them is in the json-file log by then)."""
        task = self._copying.pop(record.id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        copier = self._copiers.pop(record.id, None)
        if copier is not None:
            await asyncio.to_thread(copier.close)
            if discard:
                copier.discard()

    async def cleanup(self, record: EngineContainer) -> None:
        await self._delete_in_runtime(record)
        await self.networks.detach(record.id)

    async def _delete_in_runtime(self, record: EngineContainer) -> None:
        """Deleted with force (processes killed, cgroups and state removed), if there."""
        with contextlib.suppress(RuntimeFailure):
            await self.runtime.delete(record.id, force=True)

    async def end_leftovers(self, record: EngineContainer) -> bool:
        """The runtime's container deleted with force (its init and so its pid namespace
        killed), then whatever is still in its cgroup killed and the cgroup removed: a crash
        between the runtime's create and the record's save may leave either."""
        dirs = [d for _, d in cgroups.container_dirs(
            cgroups.discover(), f"shoal/{self.cgroup_scope}/{record.id}", record.id)]
        state = StateDir(self.runtime_root, record.id)
        if not os.path.exists(state.path) and not any(os.path.isdir(d) for d in dirs):
            return False  # the common case, a container that ended cleanly: no round trip
        alive = self.running(record) or bool(cgroups.pids_in(dirs))
        await self.cleanup(record)
        for pid in cgroups.pids_in(dirs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(cgroups.remove, dirs)
        return alive

    async def remove(self, record: EngineContainer) -> None:
        terminal = self._terminal_copies.pop(record.id, None)
        if terminal is not None:
            terminal.cancel()
            await asyncio.gather(terminal, return_exceptions=True)
        self._close_input(record)
        await self._stop_copying(record, discard=False)
        await self.cleanup(record)
        await asyncio.gather(self.networks.release(record.id), self._remove_files(record))

    async def _remove_files(self, record: EngineContainer) -> None:
        """Its rootfs, bundle and network files (side by side), once nothing of it runs."""
        await asyncio.gather(
            asyncio.to_thread(self.storage.remove, record.id),
            asyncio.to_thread(shutil.rmtree, self._dir(record) / "bundle", True),
            asyncio.to_thread(shutil.rmtree, self.network_dir(record.id), True))

    def network_dir(self, container_id: str) -> Path:
        """Where its /etc/hosts, /etc/hostname and /etc/resolv.conf are kept."""
        return self.state_dir / "containers" / container_id / "network"

    async def connect(self, record: EngineContainer, network: str, *, ip: str = "",
                      aliases: list[str] | None = None,
                      cluster_network: NetworkSpec | None = None,
                      again_ok: bool = False) -> None:
        try:
            image = await asyncio.to_thread(self.store.get, record.spec.image)
            exposed = list(image.defaults.exposed_ports)
        except ShoalError:  # the image is gone since: its EXPOSE is not known any more
            exposed = []
        await self.networks.connect(network, record.id, record.name, record.spec,
                                    self.network_dir(record.id), ip=ip, aliases=aliases,
                                    hostname=hostname_of(record),
                                    cluster_network=cluster_network, image_exposed=exposed,
                                    again_ok=again_ok)

    async def disconnect(self, record: EngineContainer, network: str) -> None:
        await self.networks.disconnect(network, record.id, self.network_dir(record.id))

    async def set_connected(self, record: EngineContainer,
                            attachments: list[NetworkAttachment]) -> None:
        """The container on its own network and exactly the ``attachments`` (a scheduler's
        container, as its record says after a connect or disconnect): the networks it is on
        and not named are left, those named and missing joined. A network that cannot be
        joined or left is logged; the others still are."""
        wanted = {a.name for a in attachments}
        on = await asyncio.to_thread(self.networks.networks_of, record.id)
        for network in on:
            if network != record.spec.network and network not in wanted:
                try:
                    await self.disconnect(record, network)
                except NotFound:
                    pass  # left meanwhile (the scheduler's own disconnect)
                except ShoalError as exc:
                    log.error("leaving a network failed", container_id=record.id,
                              network=network, error=str(exc))
        for attachment in attachments:
            if attachment.name in on:
                continue
            try:
                await self.connect(record, attachment.name, ip=attachment.ip,
                                   aliases=list(attachment.aliases),
                                   cluster_network=attachment.spec, again_ok=True)
            except ShoalError as exc:
                log.error("joining a network failed", container_id=record.id,
                          network=attachment.name, error=str(exc))

    def published_ports(self, record: EngineContainer) -> list[PortMapping]:
        chosen = self.networks.ports(record.id)
        return record.spec.ports if chosen is None else chosen

    def address(self, record: EngineContainer) -> str:
        return self.networks.address(record.id)

    def endpoints(self, record: EngineContainer) -> list[EndpointSettings]:
        return self.networks.settings(record.id)

    async def close(self) -> None:
        """Stop copying (the raw files keep what comes meanwhile); leave the helper running.
        Our ends of terminals and stdin pipes close, but the helper keeps a copy of each: the
        containers get no hangup and no EOF, and the next worker takes them back. (Meanwhile
        nobody reads a terminal: a container writing more than its buffer holds waits.)"""
        for terminal in self._terminal_copies.values():
            terminal.cancel()
        await asyncio.gather(*self._terminal_copies.values(), return_exceptions=True)
        self._terminal_copies.clear()
        for fd in self._inputs.values():
            os.close(fd)
        self._inputs.clear()
        for task in self._copying.values():
            task.cancel()
        await asyncio.gather(*self._copying.values(), return_exceptions=True)
        self._copying.clear()
        for copier in self._copiers.values():
            copier.close()
        self._copiers.clear()
        await asyncio.gather(*self._dropping, return_exceptions=True)
        await self.networks.close()
        await self.runtime.close()


def _removed_at_exit(record: EngineContainer) -> bool:
    """Whether the engine removes the container once it has exited: --rm, whose restart
    policy (no) never starts it again."""
    return record.spec.auto_remove and record.spec.restart.name == "no"
