"""What the worker's process driver, its shim and its daemon need from the host's operating
system, as one interface with a POSIX and a Windows side (``worker.hostos`` picks one).

Everything POSIX-only that the ``process`` driver's path used to call directly (sessions and
process groups, ``killpg``, ``/proc``, pidfds, uvloop, loop signal handlers) lives behind
these methods; the Windows side does the same with job objects, process groups and console
control events.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import subprocess
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from worker.hostos.jobs import JobLimits


@dataclass(frozen=True, slots=True)
class PopenOptions:
    """How the shim starts a container's command with ``subprocess.Popen``: in a new session
    (POSIX), entering its cgroup between fork and exec (``preexec_fn``, Linux with limits),
    or with creation flags (Windows: a new process group, created suspended so it is in its
    job before it runs)."""

    start_new_session: bool = False
    creationflags: int = 0
    preexec_fn: Callable[[], None] | None = None


class Child(abc.ABC):
    """A process the worker started (a shim, or an exec'd command)."""

    pid: int

    @abc.abstractmethod
    async def wait(self) -> int:
        """Its return code (negative -N when killed by signal N, on POSIX)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """End it at once (nothing happens if it has exited)."""

    @abc.abstractmethod
    async def read_line(self) -> bytes:
        """A line from its stdout (a shim's "ready"); b"" at EOF."""


class PopenChild(Child):
    """A ``subprocess.Popen`` child, waited for on a thread of its own (no event-loop child
    watcher needed, so any loop will do: Windows' selector loop has none)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def reap() -> None:
            code = popen.wait()
            loop.call_soon_threadsafe(self._settle, code)

        threading.Thread(target=reap, name=f"wait-{popen.pid}", daemon=True).start()

    def _settle(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        if self.popen.returncode is None:
            # OSError: it has exited meanwhile (Windows answers access denied)
            with contextlib.suppress(OSError):
                self.popen.kill()

    async def read_line(self) -> bytes:
        stdout = self.popen.stdout
        return await asyncio.to_thread(stdout.readline) if stdout is not None else b""


class Confinement(abc.ABC):
    """The shim's hold on its container's processes, made before the command starts (a
    cgroup with the limits, or a Windows job): the command starts with ``popen_options``, is
    ``adopt``ed, and everything it starts stays held."""

    @abc.abstractmethod
    def popen_options(self) -> PopenOptions:
        """How the shim starts the container's command."""

    @abc.abstractmethod
    def adopt(self, pid: int) -> None:
        """Right after starting it with ``popen_options``: hold the command (and let it run).
        If it cannot be held, it is ended rather than run unconfined, and this raises."""

    @abc.abstractmethod
    def end_rest(self) -> None:
        """The main process has exited: end whatever it left running."""

    def close(self) -> None:  # noqa: B027 - a process group holds nothing
        """The shim is done with it."""


class HostOS(abc.ABC):
    name: str
    # Whether the event loop can wait on a pipe's descriptor (POSIX); without, exec and
    # attach streams copy on threads.
    pollable_pipes: bool
    # Whether the host has ptys and unix-socket descriptor passing (run -t/-i, exec -t).
    terminals: bool
    # Whether a process's resource limits can be set for its children (setrlimit: --ulimit).
    rlimits: bool

    # --- the daemon -------------------------------------------------------------------------
    @abc.abstractmethod
    def run(self, main: Coroutine[Any, Any, None]) -> None:
        """Run the daemon's main coroutine on the event loop this host serves best."""

    @abc.abstractmethod
    def on_stop_request(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on the running loop) when the daemon is asked to stop (SIGTERM,
        SIGINT; Ctrl+C, Ctrl+Break); returns what takes that back."""

    @abc.abstractmethod
    def memory_total(self) -> int:
        """Physical memory in bytes (0 if unknown)."""

    @abc.abstractmethod
    def process_limit(self) -> int:
        """How many processes the host can hold (0 if unknown)."""

    # --- the worker's side of a container -----------------------------------------------------
    @abc.abstractmethod
    def base_environment(self) -> dict[str, str]:
        """What a container's command needs from the host's environment to start at all,
        under whatever its spec sets (PATH; on Windows SYSTEMROOT and its kin too)."""

    @abc.abstractmethod
    def refuse_limits(self, limits: JobLimits) -> str:
        """Why the process driver cannot honour these limits here ("" if it can)."""

    @abc.abstractmethod
    async def start_shim(self, argv: list[str], env: dict[str, str]) -> Child:
        """Start a shim detached from the worker (its own session or process group), its
        stdout a pipe to us, stdin and stderr null."""

    @abc.abstractmethod
    async def start_exec(self, argv: list[str], *, env: dict[str, str], cwd: str | None,
                         stdio: tuple[int | None, int, int], container_id: str) -> Child:
        """Start a process in a running container (stdin None: null)."""

    @abc.abstractmethod
    def signal(self, pid: int, signum: int, *, container_id: str, all_processes: bool) -> None:
        """Deliver ``signum`` (Linux numbering) to the container's main process ``pid``, or to
        all its processes; Unsupported where the host has no way to."""

    @abc.abstractmethod
    def alive(self, pid: int) -> bool:
        """Whether process ``pid`` exists."""

    @abc.abstractmethod
    async def wait_foreign(self, pid: int) -> None:
        """Until process ``pid``, not our child (a shim of an earlier worker), has exited."""

    @abc.abstractmethod
    def members(self, pid: int, container_id: str) -> list[int]:
        """The pids of the container whose main process is ``pid``."""

    # --- the shim's side ------------------------------------------------------------------------
    @abc.abstractmethod
    def confine(self, container_id: str, limits: JobLimits) -> Confinement:
        """Before the container's command starts: what will hold its processes together
        under ``limits`` (OSError if it cannot be made)."""
