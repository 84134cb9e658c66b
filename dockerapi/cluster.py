"""Waiting and attaching through a scheduler before the container has reached a worker.

``docker run`` asks for the attach and the wait before the start; a scheduler can forward them
to a worker only once the container is placed and started there. Until then the front end
follows the cluster's record (events say when it changes), then reads the output through the
scheduler's forwarded logs, as ``shoal run`` does against a scheduler. A container created with
AutoRemove is removed once it has ended, as the docker CLI expects of the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from dockerapi.hijack import STDERR, STDOUT, frame
from dockerapi.verbs import Verbs
from protocol.errors import NotFound, ShoalError, Unavailable
from protocol.messages import (
    ContainerInspected,
    ContainerLogs,
    InspectContainer,
    LogLine,
    Ok,
    RemoveContainer,
    WatchEvents,
)
from protocol.observed import ContainerInfo

FINAL = ("exited", "failed", "rejected", "orphaned", "removed")
RUNNING_OR_FINAL = ("running", *FINAL)
RECHECK = 1.0  # the record is read again at least this often, events or not
DEADLINE = 24 * 3600.0
REMOVE_WAIT = 30.0


async def _until(verbs: Verbs, cid: str, states: tuple[str, ...]) -> ContainerInfo | None:
    """The record once its schedule state is one of ``states`` (None once it is gone)."""
    events = await verbs.open(lambda r: WatchEvents(filters={"type": "container", "id": cid},
                                                    reply=r))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while loop.time() < deadline:
            try:
                info = (await verbs.ask(lambda r: InspectContainer(id=cid, reply=r),
                                        ContainerInspected)).info
            except NotFound:
                return None
            if info.schedule_state in states:
                return info
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(events.recv(), RECHECK)
        raise Unavailable(f"{cid} did not reach {'/'.join(states)}")
    finally:
        events.close()


async def removed(verbs: Verbs, cid: str, since: float) -> None:
    """Return once the container is destroyed on its worker (its ``destroy`` event, from
    ``since``, a moment before the remove was asked), as Docker's remove returns once it is
    gone. At most REMOVE_WAIT: the removal is committed, and a worker that is away finishes
    it later. (The scheduler's record, which counts it among its volumes' users, may last a
    moment longer.)"""
    events = await verbs.open(lambda r: WatchEvents(
        since=since, filters={"type": "container", "id": cid, "action": "destroy"}, reply=r))
    try:
        with contextlib.suppress(TimeoutError, ShoalError):
            await asyncio.wait_for(events.recv(), REMOVE_WAIT)
    finally:
        events.close()


async def started(verbs: Verbs, cid: str) -> None:
    """Return once the container runs on its worker (or has already ended there)."""
    await _until(verbs, cid, RUNNING_OR_FINAL)


async def wait(verbs: Verbs, info: ContainerInfo, condition: str) -> tuple[int, str]:
    """(exit code, error) once the container has ended (and, for ``removed``, is gone)."""
    if condition == "next-exit" and info.schedule_state in FINAL:
        raise Unavailable(f"container {info.id} has ended and is not started again here")
    ended = await _until(verbs, info.id, FINAL)
    if ended is None:
        return 0, ""
    code, error = ended.state.exit_code, ended.state.error
    if condition == "removed":
        if ended.spec.auto_remove:
            with contextlib.suppress(NotFound):
                await verbs.ask(lambda r: RemoveContainer(id=info.id, force=True, reply=r), Ok)
        await _until(verbs, info.id, ())
    if code is None:
        return -1, error or f"container {info.id} ended {ended.schedule_state}"
    return code, error


async def follow(verbs: Verbs, info: ContainerInfo, response: web.StreamResponse, tty: bool,
                 want: dict[str, bool]) -> None:
    """The container's output from its start to its end, once it runs."""
    running = await _until(verbs, info.id, RUNNING_OR_FINAL)
    if running is None:
        return
    lines = await verbs.open(lambda r: ContainerLogs(
        id=info.id, follow=True, stdout=want["stdout"], stderr=want["stderr"], reply=r))
    try:
        async for line in lines:
            if isinstance(line, LogLine):
                await response.write(line.data if tty else frame(
                    STDOUT if line.stream == "stdout" else STDERR, line.data))
    except (ShoalError, ConnectionError):
        pass
    finally:
        lines.close()
