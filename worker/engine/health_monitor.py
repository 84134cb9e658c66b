"""Runs containers' healthchecks: one task per running container that has one, on the worker's
event loop, which sleeps until the next probe is due, runs it as an exec in the container (its
output read by the loop, never a thread; at most one probe of a container at a time, killed at
its timeout) and records the result with Docker's rules (``healthcheck``). A change of status is
saved with the record and announced as Docker's ``health_status: <status>`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
from typing import TYPE_CHECKING

import msgspec
import structlog

from protocol.errors import ShoalError
from protocol.observed import MAX_HEALTH_OUTPUT, Health, HealthResult
from worker.engine.driver import ExecRequest
from worker.engine.healthcheck import (
    EXIT_PROBE_FAILED,
    Probe,
    apply_result,
    next_delay,
    probe_output,
    resolve,
    started,
    stopped,
    timed_out,
)
from worker.engine.records import EngineContainer

if TYPE_CHECKING:
    from worker.engine.engine import Engine

log = structlog.get_logger("shoal.engine")


def probe_of(record: EngineContainer) -> Probe | None:
    return resolve(record.spec.healthcheck, record.image.healthcheck)


class HealthMonitor:
    """The healthcheck tasks of one engine's containers, by container id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def begin(self, record: EngineContainer, *, fresh: bool) -> None:
        """Start checking a running container: ``fresh`` for a (re)start (its health goes back
        to starting), not for one re-adopted after a worker restart (it keeps its status)."""
        self._cancel(record.id)
        probe = probe_of(record)
        if probe is None:
            if record.state.health is not None:
                self._set(record, None)
            return
        if fresh or record.state.health is None:
            self._set(record, started(record.state.health))
        task = asyncio.get_running_loop().create_task(self._run(record, probe))
        self._tasks[record.id] = task
        task.add_done_callback(functools.partial(self._forget, record.id))

    def end(self, record: EngineContainer) -> Health | None:
        """Stop checking (the container stopped): its health as Docker leaves it, unhealthy."""
        self._cancel(record.id)
        health = record.state.health
        return stopped(health) if health is not None else None

    def close(self) -> None:
        """Stop every task, leaving each health as it is (the next worker resumes them)."""
        for container_id in list(self._tasks):
            self._cancel(container_id)

    def checking(self) -> int:
        return len(self._tasks)

    def _cancel(self, container_id: str) -> None:
        task = self._tasks.pop(container_id, None)
        if task is not None:
            task.cancel()

    def _forget(self, container_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(container_id) is task:
            del self._tasks[container_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("healthcheck task failed", container_id=container_id,
                      error=repr(task.exception()))

    async def _run(self, record: EngineContainer, probe: Probe) -> None:
        while True:
            health = record.state.health or started(None)
            await asyncio.sleep(next_delay(probe, health, record.state.started_at, time.time()))
            if record.state.status != "running":
                return
            result = await self.probe(record, probe)
            if record.state.status != "running" or record.state.health is None:
                return  # it stopped while the probe ran: the stop decides its health
            before = record.state.health.status
            after = apply_result(record.state.health, result, probe, record.state.started_at)
            self._set(record, after)
            if after.status != before:
                log.info("health changed", container_id=record.id, status=after.status,
                         failing_streak=after.failing_streak)
                self.engine.health_changed(record, after.status)

    async def probe(self, record: EngineContainer, probe: Probe) -> HealthResult:
        """One probe, as an exec in the container with its env, user and workdir."""
        begun = time.time()
        request = ExecRequest(argv=list(probe.argv), cwd=record.workdir(), user=record.user(),
                              split_stderr=False)
        try:
            process = await self.engine.driver.exec(record, request)
        except (ShoalError, OSError) as exc:
            return HealthResult(start=begun, end=time.time(), exit_code=EXIT_PROBE_FAILED,
                                output=probe_output(str(exc).encode(), False))
        output = _BoundedOutput(process.stdout)
        try:
            async with asyncio.timeout(probe.timeout):
                await output.done
                code = await process.wait()
        except TimeoutError:
            return HealthResult(start=begun, end=time.time(), exit_code=EXIT_PROBE_FAILED,
                                output=timed_out(probe))
        finally:
            output.close()
            process.kill()
            with contextlib.suppress(ShoalError, OSError):
                await asyncio.shield(process.wait())
            process.close()
        return HealthResult(start=begun, end=time.time(), exit_code=max(-1, min(code, 255)),
                            output=probe_output(output.kept, output.truncated))

    def _set(self, record: EngineContainer, health: Health | None) -> None:
        record.state = msgspec.structs.replace(record.state, health=health)
        self.engine.disk.save(record)


class _BoundedOutput:
    """Reads a probe's output on the event loop until EOF, keeping the first 4096 bytes and
    discarding the rest (the probe must not block on a full pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.kept = b""
        self.truncated = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._closed = False
        if sys.platform == "win32":
            # Windows' selector loop watches sockets only (select() on a pipe fails inside
            # the loop, not at add_reader): a thread reads the pipe there.
            self._read_by_thread()
            return
        try:
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._readable)
        except (NotImplementedError, OSError):
            # Another loop than the daemon's (uvloop watches pipes): read it in a thread.
            os.set_blocking(fd, True)
            self._read_by_thread()

    def _read_by_thread(self) -> None:
        self._closed = True
        self._thread = self._loop.create_task(self._read_in_thread())

    async def _read_in_thread(self) -> None:
        while chunk := await asyncio.to_thread(_read_some, self.fd):
            self._keep(chunk)
        if not self.done.done():
            self.done.set_result(None)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._stop()
            return
        self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        room = MAX_HEALTH_OUTPUT - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        if len(chunk) > max(room, 0):
            self.truncated = True

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self.fd)
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        """Stop reading (the process owns the fd and closes it)."""
        self._stop()


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""
