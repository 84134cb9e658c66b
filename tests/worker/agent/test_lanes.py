"""Per-container lanes: order within a container, none across containers, runs superseded
before they commit, and a close that leaves nothing running."""

from __future__ import annotations

import asyncio
from collections import deque

from protocol.specs import ContainerSpec
from tests.helpers.bounded_run import run
from worker.agent.lanes import ContainerLanes, LaneInstruction, superseded
from worker.agent.state import Reconnect, Run, StopAndRemove

SPEC = ContainerSpec(image="big")


class Recorder:
    """Prepares a run only when the test releases it; records every commit in order."""

    def __init__(self) -> None:
        self.gates: dict[tuple[str, int], asyncio.Event] = {}
        self.preparing: dict[tuple[str, int], asyncio.Event] = {}
        self.commits: list[tuple[str, str, int]] = []
        self.committed = asyncio.Condition()

    def gate(self, cid: str, generation: int) -> asyncio.Event:
        return self.gates.setdefault((cid, generation), asyncio.Event())

    def started(self, cid: str, generation: int) -> asyncio.Event:
        return self.preparing.setdefault((cid, generation), asyncio.Event())

    async def prepare(self, run: Run) -> bool:
        self.started(run.container_id, run.generation).set()
        await self.gate(run.container_id, run.generation).wait()
        return True

    async def commit(self, instruction: LaneInstruction) -> None:
        generation = instruction.generation if isinstance(instruction, Run) else 0
        async with self.committed:
            self.commits.append((type(instruction).__name__, instruction.container_id,
                                 generation))
            self.committed.notify_all()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5), self.committed:
            await self.committed.wait_for(lambda: len(self.commits) >= count)


def test_superseded_drops_queued_runs_and_keeps_stops() -> None:
    stop = StopAndRemove("x", "r", "s1")
    queue = superseded(deque([stop, Run("x", 1, SPEC, "s2"), Reconnect("x", 1, SPEC, "s3")]),
                       Run("x", 2, SPEC, "s4"))
    assert list(queue) == [stop]


def test_a_reconnect_supersedes_only_older_reconnects() -> None:
    run_ = Run("x", 1, SPEC, "s1")
    queue = superseded(deque([run_, Reconnect("x", 1, SPEC, "s2")]),
                       Reconnect("x", 1, SPEC, "s3"))
    assert list(queue) == [run_]


def test_a_reconnect_waits_for_the_run_being_prepared() -> None:
    async def body() -> None:
        rec = Recorder()
        lanes = ContainerLanes(rec.prepare, rec.commit)
        lanes.submit(Run("x", 1, SPEC, "s1"))
        await asyncio.wait_for(rec.started("x", 1).wait(), 5)
        lanes.submit(Reconnect("x", 1, SPEC, "s2"))
        assert lanes.pending_run("x") == 1  # the image fetch goes on
        rec.gate("x", 1).set()
        await rec.until(2)
        assert rec.commits == [("Run", "x", 1), ("Reconnect", "x", 0)]
        await lanes.close()

    run(body)


def test_a_held_run_holds_up_only_its_own_container() -> None:
    async def body() -> None:
        rec = Recorder()
        lanes = ContainerLanes(rec.prepare, rec.commit)
        lanes.submit(Run("x", 1, SPEC, "s1"))
        await asyncio.wait_for(rec.started("x", 1).wait(), 5)
        rec.gate("y", 1).set()
        lanes.submit(Run("y", 1, SPEC, "s2"))
        await rec.until(1)
        lanes.submit(StopAndRemove("y", "moved", "s3"))
        await rec.until(2)
        assert rec.commits == [("Run", "y", 1), ("StopAndRemove", "y", 0)]
        assert lanes.pending_run("x") == 1
        rec.gate("x", 1).set()
        await rec.until(3)
        assert rec.commits[-1] == ("Run", "x", 1)
        await lanes.close()
        assert not lanes.busy()

    run(body)


def test_a_stop_or_newer_run_supersedes_a_preparing_run() -> None:
    async def body() -> None:
        rec = Recorder()
        lanes = ContainerLanes(rec.prepare, rec.commit)
        lanes.submit(Run("x", 1, SPEC, "s1"))
        await asyncio.wait_for(rec.started("x", 1).wait(), 5)
        lanes.submit(StopAndRemove("x", "replaced by generation 2", "s2"))
        assert lanes.pending_run("x") is None
        lanes.submit(Run("x", 2, SPEC, "s2"))
        assert lanes.pending_run("x") == 2
        rec.gate("x", 2).set()
        await rec.until(2)
        assert rec.commits == [("StopAndRemove", "x", 0), ("Run", "x", 2)]
        rec.gate("x", 1).set()  # too late: generation 1 was abandoned
        await lanes.close()
        assert rec.commits == [("StopAndRemove", "x", 0), ("Run", "x", 2)]

    run(body)


def test_close_cancels_preparing_runs_and_drops_the_queue() -> None:
    async def body() -> None:
        rec = Recorder()
        lanes = ContainerLanes(rec.prepare, rec.commit)
        lanes.submit(Run("x", 1, SPEC, "s1"))
        await asyncio.wait_for(rec.started("x", 1).wait(), 5)
        await lanes.close()
        lanes.submit(Run("y", 1, SPEC, "s2"))  # after close: dropped
        assert rec.commits == []
        assert not lanes.busy()
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    run(body)
