"""What the engine needs from whatever runs container processes (native runtime, plain process).

A driver starts the container's main process with its output going to the container's
json-file log and its exit status kept durably, so both survive a restart of the worker; it can
signal, list, exec into, wait for and clean up after the container, and re-adopt one that a
previous worker process started.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from worker.engine.records import ContainerRecord


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


class Driver(abc.ABC):
    """One way of running containers. All methods may be called from the event loop."""

    name: str

    @abc.abstractmethod
    async def prepare(self, record: ContainerRecord) -> dict[str, str]:
        """Make what the container needs on disk (rootfs, bundle); returns facts for inspect."""

    @abc.abstractmethod
    async def start(self, record: ContainerRecord, log_path: str, *, max_size: int = 0,
                    max_file: int = 1) -> Started:
        """Start the main process; its stdout/stderr go to ``log_path`` (json-file)."""

    @abc.abstractmethod
    async def wait(self, record: ContainerRecord) -> ExitStatus:
        """Wait until the main process (started by this or an earlier worker) has exited."""

    @abc.abstractmethod
    def running(self, record: ContainerRecord) -> bool:
        """Whether the main process is still alive (for re-adoption at start-up)."""

    @abc.abstractmethod
    async def signal(self, record: ContainerRecord, signum: int, *, all_processes: bool = False
                     ) -> None:
        """Send ``signum`` to the main process, or to every process of the container."""

    @abc.abstractmethod
    async def processes(self, record: ContainerRecord) -> list[int]:
        """Host pids of the container's processes."""

    @abc.abstractmethod
    async def exec(self, record: ContainerRecord, argv: list[str], env: list[str], cwd: str,
                   user: str) -> ExecResult:
        """Run a process inside the running container and collect its output."""

    @abc.abstractmethod
    async def cleanup(self, record: ContainerRecord) -> None:
        """After an exit: release runtime state so the container can start again."""

    @abc.abstractmethod
    async def remove(self, record: ContainerRecord) -> None:
        """Remove everything ``prepare`` made. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """The worker is going away: release what the driver holds (containers keep running)."""
