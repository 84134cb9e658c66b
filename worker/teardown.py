"""Leaving a host clean after a worker that will not come back (dev clusters, benchmarks, tests).

A worker leaves its containers running on purpose (live restore), and its runtime helper
outlives it. When a worker's state is to be thrown away, this kills and deletes whatever still
runs under its runtime, stops the helper and detaches any rootfs mount left under its state dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from protocol.errors import ShoalError
from worker.engine.native_driver import cgroup_scope
from worker.network.manager import Networks
from worker.runtime import cgroups
from worker.runtime.client import RuntimeHelper
from worker.storage.mounts import unmount

STEP_TIMEOUT = 15.0  # a helper that does not answer must not hang the teardown


async def tear_down_worker(state_dir: Path) -> None:
    root = state_dir / "runtime"
    if (root / ".helper.sock").exists():
        with contextlib.suppress(ShoalError, OSError, TimeoutError):
            helper = await asyncio.wait_for(RuntimeHelper.connect(root), STEP_TIMEOUT)
            for state in await asyncio.wait_for(helper.list(), STEP_TIMEOUT):
                with contextlib.suppress(ShoalError, TimeoutError):
                    await asyncio.wait_for(helper.delete(state.id, force=True), STEP_TIMEOUT)
            await asyncio.wait_for(helper.shutdown(), STEP_TIMEOUT)
    await asyncio.to_thread(unmount, state_dir)
    await asyncio.to_thread(_remove_cgroup_scope, state_dir)
    if (state_dir / "networks").exists():  # its bridges, veths and nftables table
        await Networks(state_dir, cgroup_scope(state_dir)).tear_down()


def _remove_cgroup_scope(state_dir: Path) -> None:
    """The worker's own (now empty) cgroup directory in each hierarchy."""
    scope = cgroup_scope(state_dir)
    with contextlib.suppress(OSError):
        for hierarchy in cgroups.discover():
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(hierarchy.own_dir, "shoal", scope))
