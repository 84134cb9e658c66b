"""A runtime helper with no client and no live container for ``--idle-exit`` seconds exits,
and its zygote with it; while a container lives or a client is connected it stays."""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.runtime_harness import Bundle, run
from worker.runtime.client import RuntimeHelper

pytestmark = pytest.mark.root

IDLE = 0.3
# Long enough that an idle timer wrongly running would have fired several times over.
STAYS = 6 * IDLE
GOES = 20.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def exits_within(pidfds: list[int], timeout: float) -> bool:
    """Whether every one of the processes behind ``pidfds`` exits within ``timeout``."""
    waiting = list(pidfds)
    while waiting:
        ready, _, _ = select.select(waiting, [], [], timeout)
        if not ready:
            return False
        waiting = [fd for fd in waiting if fd not in ready]
    return True


def test_an_idle_helper_exits_with_its_zygote(make_bundle: Callable[..., Bundle],
                                              state_root: Path, helper_pids: list[int]) -> None:
    sleeper = make_bundle(["sleep", "1000"])
    pidfds: list[int] = []

    async def body() -> None:
        rt = await RuntimeHelper.spawn(state_root, log_level="warning", idle_exit=IDLE)
        helper_pids.append(rt.helper_pid)
        [zygote] = children(rt.helper_pid)
        pidfds.extend([os.pidfd_open(rt.helper_pid), os.pidfd_open(zygote)])
        await rt.create("c1", sleeper.path)
        await rt.start("c1")
        await rt.close()
        # No client, but a live container: it stays (and so does its container).
        assert not exits_within(pidfds[:1], STAYS)
        rt = await RuntimeHelper.connect(state_root)
        await rt.kill("c1", "KILL")
        await rt.wait("c1")
        await rt.delete("c1")
        # No container, but a client: it stays.
        assert not exits_within(pidfds[:1], STAYS)
        await rt.close()

    try:
        run(body)
        # Neither: it goes, and its zygote with it.
        assert exits_within(pidfds, GOES)
        assert not (state_root / ".helper.sock").exists()

        async def again() -> None:  # the next client starts a new helper on demand
            rt = await RuntimeHelper.ensure(state_root, idle_exit=IDLE)
            helper_pids.append(rt.helper_pid)
            assert await rt.list() == []
            await rt.shutdown()

        run(again)
    finally:
        for fd in pidfds:
            os.close(fd)


def test_idle_exit_zero_means_never(state_root: Path, helper_pids: list[int]) -> None:
    async def body() -> None:
        rt = await RuntimeHelper.spawn(state_root, log_level="warning", idle_exit=0)
        helper_pids.append(rt.helper_pid)
        pidfd = os.pidfd_open(rt.helper_pid)
        try:
            await rt.close()
            assert not exits_within([pidfd], STAYS)
        finally:
            os.close(pidfd)
        rt = await RuntimeHelper.connect(state_root)
        await rt.shutdown()

    run(body)
