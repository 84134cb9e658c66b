"""The engine's verbs on a container's input and output: exec (a new process in a running
container), its logs (history and follow), attach to its output and input, and the size of its
terminal. A mixin of ``Engine``: it reads the engine's records, driver and exit counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from protocol.errors import Conflict, InvalidArgument
from protocol.eventfeed import EventFeed
from protocol.observed import EventType
from worker.engine.driver import Driver, ExecProcess, ExecRequest, ExecResult
from worker.engine.logfile import LogFollower, LogRecord, follow_log
from worker.engine.records import ContainerDisk, EngineContainer

FOLLOW_POLL = 0.05  # how often a followed log file is looked at for new lines
MAX_WINDOW = 10000  # rows or columns of a terminal, as the wire's TerminalSize bounds them
LIVE = ("running", "restarting", "paused")  # a process of it is there (or soon, restarting)


class ContainerIO:
    """Exec, logs, attach and terminal sizes, over what ``Engine`` keeps."""

    driver: Driver
    disk: ContainerDisk
    events: EventFeed
    records: dict[str, EngineContainer]
    _exited: dict[str, asyncio.Event]
    _exit_counts: dict[str, int]
    _changed: asyncio.Condition
    _window_sizes: dict[str, tuple[int, int]]

    if TYPE_CHECKING:  # Engine's, which this mixin is part of
        def find(self, ref: str) -> EngineContainer: ...

        def _announce(self, type: EventType, action: str, id: str,
                      **attributes: str) -> None: ...

    async def exec_start(self, ref: str, argv: list[str], *, env: list[str] | None = None,
                         workdir: str = "", user: str = "", tty: bool = False,
                         stdin: bool = False, split_stderr: bool = True,
                         console_size: tuple[int, int] | None = None) -> ExecProcess:
        """Start a process in a running container; the caller copies its stdio, waits for it
        and closes it (``exec`` does all that and collects the output). With ``tty`` its
        terminal has ``console_size`` (rows, cols) before the process runs."""
        record = self.find(ref)
        if record.state.status == "paused":
            raise Conflict(f"Container {record.id} is paused, unpause the container before "
                           "exec")
        if record.state.status != "running":
            raise Conflict(f"container {record.name} is not running")
        if not argv:
            raise InvalidArgument("exec needs a command")
        size = window_size(*console_size) if console_size is not None and tty else None
        request = ExecRequest(argv=list(argv), env=env or [], cwd=workdir or record.workdir(),
                              user=user or record.user(), tty=tty, stdin=stdin,
                              split_stderr=split_stderr, console_size=size)
        process = await self.driver.exec(record, request)
        self._announce("container", "exec_start", record.id, name=record.name,
                            command=" ".join(argv))

        def died(code: int) -> None:
            self._announce("container", "exec_die", record.id, name=record.name,
                                exitCode=str(code))

        process.on_exit.append(died)
        return process

    async def exec(self, ref: str, argv: list[str], *, env: list[str] | None = None,
                   workdir: str = "", user: str = "") -> ExecResult:
        """Run a process in a running container to its end; its stdout and stderr together."""
        process = await self.exec_start(ref, argv, env=env, workdir=workdir, user=user,
                                        split_stderr=False)
        try:
            output = await asyncio.to_thread(_read_all, process.stdout)
            return ExecResult(await process.wait(), output)
        finally:
            process.kill()
            await process.wait()
            process.close()

    async def logs(self, ref: str, *, follow: bool = False, tail: int = -1, since: float = 0.0,
                   ) -> AsyncGenerator[LogRecord, None]:
        """Entries oldest first; with ``follow`` new ones as they come, until the container ends."""
        record = self.find(ref)
        path = self.disk.log_path(record.id)
        history, follower = follow_log(path, since=since, tail=tail)
        try:
            for entry in history:
                yield entry
            if not follow:
                return
            while True:
                alive = record.state.status in LIVE \
                    and record.id in self.records
                for entry in follower.poll():
                    if entry.time >= since:
                        yield entry
                if not alive:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exited[record.id].wait(), FOLLOW_POLL)
        finally:
            follower.close()

    async def attach(self, ref: str) -> AsyncGenerator[LogRecord, None]:
        """Output from now until the container's next exit (what ``run`` shows)."""
        record = self.find(ref)
        follower = LogFollower(self.disk.log_path(record.id))
        exits = self._exit_counts.get(record.id, 0)
        try:
            while True:
                ended = self._exit_counts.get(record.id, 0) > exits \
                    or record.id not in self.records
                for entry in follower.poll():
                    yield entry
                if ended:
                    return
                with contextlib.suppress(TimeoutError):
                    async with self._changed:
                        await asyncio.wait_for(self._changed.wait(), FOLLOW_POLL)
        finally:
            follower.close()

    async def attach_input(self, ref: str) -> int | None:
        """Once the container runs (now, or at its next start), a duplicate of our end of its
        stdin (the pty master with a tty) for the caller to write to and close; None when it
        has no open stdin (created without ``-i``/``-t``, or it ended first)."""
        record = self.find(ref)
        if not (record.spec.stdin_open or record.spec.tty):
            return None
        exits = self._exit_counts.get(record.id, 0)
        async with self._changed:
            await self._changed.wait_for(
                lambda: record.state.status == "running"
                or self._exit_counts.get(record.id, 0) > exits or record.id not in self.records)
        fd = self.driver.input(record) if record.state.status == "running" else None
        return os.dup(fd) if fd is not None else None

    def close_input(self, ref: str) -> None:
        """The attached client's input ended (``run -i``): the container reads EOF."""
        self.driver.close_input(self.find(ref))

    def resize(self, ref: str, rows: int, cols: int) -> None:
        """Set the window size of the container's terminal now if it runs, and at its next
        start; InvalidArgument for a size no terminal has, nothing without a terminal."""
        record = self.find(ref)
        size = window_size(rows, cols)
        if not record.spec.tty:
            return
        self._window_sizes[record.id] = size
        if record.state.status == "running":
            self.driver.resize(record, *size)


def window_size(rows: int, cols: int) -> tuple[int, int]:
    """(rows, cols) if a terminal can have that size, else InvalidArgument."""
    if not (1 <= rows <= MAX_WINDOW and 1 <= cols <= MAX_WINDOW):
        raise InvalidArgument(f"a terminal of {rows}x{cols} (rows x columns): each must be "
                              f"from 1 to {MAX_WINDOW}")
    return rows, cols


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
