"""What the engine needs from whatever runs container processes (native runtime, plain process).

A driver starts the container's main process with its output going to the container's
json-file log and its exit status kept durably, so both survive a restart of the worker; it can
signal, list, exec into, wait for and clean up after the container, and re-adopt one that a
previous worker process started.
"""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol import signals
from protocol.errors import Unsupported
from protocol.observed import EndpointSettings, ResourceSample
from protocol.specs import PortMapping, Resources
from worker.engine.records import EngineContainer


@dataclass(frozen=True, slots=True)
class ExitStatus:
    exit_code: int
    finished_at: float
    oom_killed: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class Started:
    pid: int
    started_at: float


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    output: bytes


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """A process to run in a running container: with a pty (``tty``) of ``console_size``
    (rows, cols) from the start, whether the caller will feed its stdin (``stdin``; otherwise
    it reads /dev/null, or a pty nobody types on), and whether stderr has its own pipe
    (``split_stderr``; otherwise it shares stdout's, 2>&1)."""

    argv: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: str = ""
    tty: bool = False
    stdin: bool = False
    split_stderr: bool = True
    console_size: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ExecPipes:
    """The pipes of a non-tty exec: the process's ends and ours. With stderr merged (2>&1)
    the process writes both streams to stdout's pipe and we have no stderr to read."""

    stdin: int | None  # the process reads
    stdin_ours: int | None
    stdout: int  # the process writes
    stdout_ours: int
    stderr: int
    stderr_ours: int | None

    @classmethod
    def open(cls, request: ExecRequest, ours: list[int], theirs: list[int]) -> ExecPipes:
        """Make them, recording our ends in ``ours`` and the process's in ``theirs`` (the
        caller closes ``theirs`` once the process has them, ``ours`` if the exec fails)."""
        in_r, in_w = os.pipe() if request.stdin else (None, None)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe() if request.split_stderr else (None, out_w)
        ours += [fd for fd in (in_w, out_r, err_r) if fd is not None]
        theirs += [fd for fd in (in_r, out_w) if fd is not None]
        if err_r is not None:  # with stderr merged, err_w is out_w itself
            theirs.append(err_w)
        return cls(in_r, in_w, out_w, out_r, err_w, err_r)


class ExecProcess(abc.ABC):
    """A process exec'd into a container and this side's ends of its stdio, which it owns:
    ``stdin`` to write to (None when not attached), ``stdout`` to read from (the pty master with
    a tty, which also takes the input), ``stderr`` (None with a tty: it is merged)."""

    def __init__(self, *, pid: int, stdin: int | None, stdout: int, stderr: int | None,
                 tty: bool) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
        self.on_exit: list[Callable[[int], None]] = []
        self._code: int | None = None

    async def wait(self) -> int:
        """The exit code (128 + n when killed by signal n), once the process has exited."""
        if self._code is None:
            code = await self._wait()
            if self._code is None:
                self._code = code
                for callback in self.on_exit:
                    callback(code)
        return self._code

    @abc.abstractmethod
    async def _wait(self) -> int:
        """Wait for the exit and return its code."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL the process now (nothing happens if it has already exited)."""

    def resize(self, rows: int, cols: int) -> None:
        """Set the pty's window size (the process gets SIGWINCH); without a tty, nothing."""
        if self.tty:
            from worker.engine.terminal import set_window_size  # Unix only, like ptys
            set_window_size(self.stdout, rows, cols)

    def close_stdin(self) -> None:
        """No more input: a pipe is closed (the process reads EOF); a pty stays open."""
        if self.stdin is not None and not self.tty:
            with contextlib.suppress(OSError):
                os.close(self.stdin)
            self.stdin = None

    def close(self) -> None:
        """Close this side's descriptors (idempotent)."""
        for fd in {self.stdin, self.stdout, self.stderr} - {None, -1}:
            assert fd is not None
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stdin = self.stderr = None
        self.stdout = -1


class Driver(abc.ABC):
    """One way of running containers. All methods may be called from the event loop."""

    name: str
    # Whether it can give a container named volumes and tmpfs mounts: a plain process sees
    # the host's file system, so the process driver refuses them rather than ignore them.
    # (It passes bind mounts over, as it always has: the host's paths are there as they are.)
    mounts: bool = True
    # Whether its containers have namespaces of their own, so one can join another's
    # network (``--network container:NAME``); a plain process has the host's.
    namespaces: bool = True
    # What ``--network default`` (``run`` without ``--network``) is on this driver.
    default_network: str

    @abc.abstractmethod
    async def prepare(self, record: EngineContainer) -> dict[str, str]:
        """Make what the container needs on disk (rootfs, bundle); returns facts for inspect."""

    @abc.abstractmethod
    async def start(self, record: EngineContainer, log_path: str, *, max_size: int = 0,
                    max_file: int = 1, compress: bool = False,
                    console_size: tuple[int, int] | None = None,
                    network_peer: EngineContainer | None = None) -> Started:
        """Start the main process; its stdout/stderr go to ``log_path`` (json-file, rotated at
        ``max_size`` keeping ``max_file`` files, gzipped with ``compress``). With a tty, its
        terminal has ``console_size`` (rows, cols) before the process runs. With
        ``network_peer`` (running; only on a driver with ``namespaces``) it joins that
        container's network namespace and has its hostname and network files."""

    @abc.abstractmethod
    async def wait(self, record: EngineContainer) -> ExitStatus:
        """Wait until the main process (started by this or an earlier worker) has exited."""

    @abc.abstractmethod
    def running(self, record: EngineContainer) -> bool:
        """Whether the main process is still alive (for re-adoption at start-up)."""

    @abc.abstractmethod
    async def signal(self, record: EngineContainer, signum: int, *, all_processes: bool = False
                     ) -> None:
        """Send ``signum`` to the main process, or to every process of the container."""

    @abc.abstractmethod
    async def processes(self, record: EngineContainer) -> list[int]:
        """Host pids of the container's processes."""

    @abc.abstractmethod
    async def exec(self, record: EngineContainer, request: ExecRequest) -> ExecProcess:
        """Start a process inside the running container, its stdio connected to pipes (or a
        pty) whose other ends the returned ExecProcess holds."""

    @abc.abstractmethod
    async def cleanup(self, record: EngineContainer) -> None:
        """After an exit: release runtime state so the container can start again."""

    @abc.abstractmethod
    async def remove(self, record: EngineContainer) -> None:
        """Remove everything ``prepare`` made. Idempotent."""

    async def end_leftovers(self, record: EngineContainer) -> bool:
        """At start-up, for a container whose record says it does not run: end anything that
        runs for it all the same (a start that a crash cut short) and release its runtime
        state. True if something was running."""
        alive = self.running(record)
        if alive:
            await self.signal(record, signals.SIGKILL, all_processes=True)
        await self.cleanup(record)
        return alive

    async def rootfs(self, record: EngineContainer) -> str | None:
        """Where this process reaches the container's root filesystem (its image's layers
        and its own changes, no mounts), mounted if it was not; None for a driver whose
        containers have no root of their own (a plain host process)."""
        return None

    def input(self, record: EngineContainer) -> int | None:
        """Our end of the running container's stdin (its pty master with a tty), if any; the
        driver owns it (callers duplicate it)."""
        return None

    def close_input(self, record: EngineContainer) -> None:  # noqa: B027 - nothing by default
        """The attached client's input ended: close a stdin pipe (a terminal stays open)."""

    def resize(self, record: EngineContainer, rows: int, cols: int) -> None:  # noqa: B027
        """Set the window size of the container's terminal, if it has one."""

    async def pause(self, record: EngineContainer) -> None:
        """Freeze every process of the running container."""
        raise Unsupported(f"the {self.name} driver cannot pause a container")

    async def resume(self, record: EngineContainer) -> None:
        """Let the processes of the paused container run again."""
        raise Unsupported(f"the {self.name} driver cannot pause a container")

    async def change_limits(self, record: EngineContainer, before: Resources) -> None:
        """``record.spec.resources`` (which were ``before``) are the container's limits from
        now on: at once if it runs, and from its next start."""
        raise Unsupported(f"the {self.name} driver cannot change a container's limits")

    async def sample(self, record: EngineContainer) -> ResourceSample:
        """The running container's resource use now."""
        raise Unsupported(f"the {self.name} driver keeps no resource statistics")

    async def renamed(self, record: EngineContainer) -> None:  # noqa: B027 - nothing by default
        """The container has a new name (``record.name``): whatever names it follows."""

    def published_ports(self, record: EngineContainer) -> list[PortMapping]:
        """The container's published ports as bound (a port asked as 0 with the one chosen)."""
        return list(record.spec.ports)

    def address(self, record: EngineContainer) -> str:
        """The container's address on its network, "" without one."""
        return ""

    def endpoints(self, record: EngineContainer) -> list[EndpointSettings]:
        """The container's endpoint on each network it is on (none on the host's network)."""
        return []

    async def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """The worker is going away: release what the driver holds (containers keep running)."""
