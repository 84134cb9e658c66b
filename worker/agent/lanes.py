"""Each container's instructions in the order the state machine gave them, containers side by
side: a slow image fetch for one container holds up nothing of another's.

A container's ``Run`` and ``StopAndRemove`` instructions go through its own lane, one at a time,
so a stop still follows the run it stops. A ``Run`` has two steps: ``prepare`` (fetch its image:
slow, and harmless to abandon) and ``commit`` (create and start it). A later ``Run`` or
``StopAndRemove`` of the same container supersedes a ``Run`` that has not committed yet: a queued
one is dropped and a preparing one cancelled, so a container revoked (or reassigned) while its
image is fetched never starts at the old generation. A committed ``Run`` finishes, and what
follows acts on the container it made. A ``Reconnect`` (the copy's networks, after a connect or
disconnect) waits behind the run that makes the copy and supersedes only an older
``Reconnect``: the newest says what the copy should be on. Reports are not queued here: they
read what is true now.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field

import structlog

from worker.agent.state import Reconnect, Run, StopAndRemove

log = structlog.get_logger("shoal.agent")

LaneInstruction = Run | StopAndRemove | Reconnect
# Prepare a run: True to commit it, False when it failed (and said so).
Prepare = Callable[[Run], Coroutine[object, object, bool]]
Commit = Callable[[LaneInstruction], Awaitable[None]]


def superseded(queue: deque[LaneInstruction], by: LaneInstruction) -> deque[LaneInstruction]:
    """What stays queued in a lane when ``by`` joins it: every instruction of a lane names one
    container, and any newer run or stop of it makes its runs and reconnects not yet begun
    moot (a stop stays: it removes what an earlier, committed run made); a reconnect makes
    only the older reconnects moot."""
    if isinstance(by, Reconnect):
        return deque(i for i in queue if not isinstance(i, Reconnect))
    return deque(i for i in queue if not isinstance(i, Run | Reconnect))


@dataclass(slots=True)
class _Lane:
    queue: deque[LaneInstruction] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    preparing: asyncio.Task[bool] | None = None
    preparing_run: Run | None = None


class ContainerLanes:
    """Runs instructions per container in order; call on the event loop."""

    def __init__(self, prepare: Prepare, commit: Commit) -> None:
        self._prepare = prepare
        self._commit = commit
        self._lanes: dict[str, _Lane] = {}
        self._closed = False

    def submit(self, instruction: LaneInstruction) -> None:
        """Queue ``instruction`` behind what its container already has, superseding runs."""
        if self._closed:
            log.info("agent stopping; instruction dropped", container_id=instruction.container_id,
                     instruction=type(instruction).__name__)
            return
        cid = instruction.container_id
        lane = self._lanes.get(cid)
        if lane is None:
            lane = self._lanes[cid] = _Lane()
        lane.queue = superseded(lane.queue, instruction)
        if lane.preparing is not None and not isinstance(instruction, Reconnect):
            log.info("run superseded while preparing", container_id=cid,
                     by=type(instruction).__name__, stimulus_id=instruction.stimulus_id)
            lane.preparing.cancel()
        lane.queue.append(instruction)
        if lane.task is None:
            lane.task = asyncio.create_task(self._drain(cid, lane))

    def pending_run(self, container_id: str) -> int | None:
        """The generation of the container's run that has not committed yet (its image still
        being fetched, or queued), if there is one."""
        lane = self._lanes.get(container_id)
        if lane is None:
            return None
        runs = [i for i in lane.queue if isinstance(i, Run)]
        if runs:
            return runs[-1].generation
        if lane.preparing is not None and not lane.preparing.cancelling() \
                and lane.preparing_run is not None:
            return lane.preparing_run.generation
        return None

    def busy(self) -> bool:
        return bool(self._lanes)

    async def close(self) -> None:
        """Drop what is queued, cancel runs still preparing, and wait for every lane to end
        (a commit under way finishes: a container is never left half made)."""
        self._closed = True
        waits: list[Awaitable[object]] = []
        for lane in self._lanes.values():
            lane.queue.clear()
            if lane.preparing is not None:
                lane.preparing.cancel()
                waits.append(lane.preparing)
            if lane.task is not None:
                waits.append(lane.task)
        await asyncio.gather(*waits, return_exceptions=True)

    async def _drain(self, cid: str, lane: _Lane) -> None:
        try:
            while lane.queue:
                instruction = lane.queue.popleft()
                try:
                    if isinstance(instruction, Run) and not await self._prepared(lane,
                                                                                 instruction):
                        continue
                    await self._commit(instruction)
                except Exception:  # a bug in one instruction must not stall the container
                    log.exception("instruction crashed", container_id=cid,
                                  instruction=type(instruction).__name__)
        finally:
            if self._lanes.get(cid) is lane:
                del self._lanes[cid]

    async def _prepared(self, lane: _Lane, run: Run) -> bool:
        """Prepare ``run`` in a task a superseding instruction can cancel; True to commit."""
        prepare = asyncio.create_task(self._prepare(run))
        lane.preparing, lane.preparing_run = prepare, run
        try:
            await asyncio.wait({prepare})
        finally:
            lane.preparing = lane.preparing_run = None
            if not prepare.done():  # this lane itself was cancelled
                prepare.cancel()
                await asyncio.gather(prepare, return_exceptions=True)
        if prepare.cancelled():
            log.info("run abandoned before it started", container_id=run.container_id,
                     generation=run.generation, stimulus_id=run.stimulus_id)
            return False
        return prepare.result()
