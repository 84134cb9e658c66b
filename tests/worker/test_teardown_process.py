"""Tearing down a process-driver worker's state: containers it left running (live restore)
are killed, with their shims, not left to run out their commands."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

from protocol.specs import ContainerSpec
from tests.helpers.bounded_run import run
from worker.engine.engine import Engine
from worker.engine.process_driver import ProcessDriver
from worker.teardown import tear_down_worker


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_containers_left_running_are_killed_with_their_shims(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        engine = Engine(state, ProcessDriver(state / "containers"))
        await engine.open()
        try:
            for name in ("one", "two"):
                await engine.create(ContainerSpec(
                    image="host", name=name, command=["sh", "-c", "sleep 600 & wait"]))
                await engine.start(name)
        finally:
            await engine.close()  # as a worker that exits: its containers run on

    run(main, timeout=60)
    pid_files = sorted(state.glob("containers/*/process/pid.json"))
    assert len(pid_files) == 2
    pids = [json.loads(f.read_bytes()) for f in pid_files]
    group = [p["pid"] for p in pids]
    shims = [p["shim_pid"] for p in pids]
    assert all(_running(pid) for pid in group + shims)
    members = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
               and _in_groups(int(entry.name), group)]
    assert len(members) >= 4  # each sh and its sleep

    try:
        run(lambda: tear_down_worker(state), timeout=60)
        assert not any(_running(pid) for pid in members + shims)
        assert all((f.parent / "exit.json").exists() for f in pid_files)
    finally:  # whatever the teardown left, not left running past the test
        for pid in members + shims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _in_groups(pid: int, groups: list[int]) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[2]) in groups
