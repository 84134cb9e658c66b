"""Leaving a host clean after a worker that will not come back (dev clusters, benchmarks, tests).

A worker leaves its containers running on purpose (live restore), and its runtime helper
outlives it. When a worker's state is to be thrown away, this kills and deletes whatever still
runs under its runtime, stops the helper and detaches any rootfs mount left under its state dir;
for the process driver, it kills each container's process group and waits for its shim.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from protocol.errors import ShoalError
from worker.engine.native_driver import cgroup_scope
from worker.hostos import HOST
from worker.network.manager import Networks
from worker.runtime import cgroups
from worker.runtime.client import RuntimeHelper
from worker.storage.mounts import unmount

STEP_TIMEOUT = 15.0  # a helper that does not answer must not hang the teardown


async def tear_down_worker(state_dir: Path) -> None:
    await _stop_process_containers(state_dir)
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


async def _stop_process_containers(state_dir: Path) -> None:
    """The process driver's containers still running: each one's process group killed (the
    shim made the command its own), then its shim waited for (it writes the exit and ends)."""
    shims = []
    for pid_file in state_dir.glob("containers/*/process/pid.json"):
        if (pid_file.parent / "exit.json").exists():
            continue  # ended; its shim is gone or going
        try:
            data = json.loads(pid_file.read_bytes())
            pid, shim = int(data["pid"]), int(data["shim_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid > 0 and shim > 0 and HOST.alive(shim):  # the shim's life vouches for the pid
            HOST.signal(pid, signal.SIGKILL, container_id=pid_file.parent.parent.name,
                        all_processes=True)
            shims.append(shim)
    for shim in shims:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(HOST.wait_foreign(shim), STEP_TIMEOUT)


def _remove_cgroup_scope(state_dir: Path) -> None:
    """The worker's own (now empty) cgroup directory in each hierarchy."""
    scope = cgroup_scope(state_dir)
    with contextlib.suppress(OSError):
        for hierarchy in cgroups.discover():
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(hierarchy.own_dir, "shoal", scope))
