"""The engine's in-place changes on the native driver: a paused container stays paused (and
frozen) across a worker restart, resource samples read from its cgroups and namespace, and an
update the kernel refuses changes nothing."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from protocol.errors import Conflict, ShoalError
from protocol.messages import UpdateContainer
from protocol.refs import RefKind, wire_ref
from protocol.specs import ContainerSpec, Resources
from tests.helpers.bounded_run import run
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.images.testimage import import_test_image
from worker.runtime import freezer
from worker.runtime.state import StateDir
from worker.teardown import tear_down_worker

pytestmark = pytest.mark.root


async def open_engine(state: Path) -> Engine:
    driver = await NativeDriver.open(state)
    if not driver.store.images():
        await asyncio.to_thread(import_test_image, driver.store)
    engine = Engine(state, driver, images=NativeImages(driver.store))
    await engine.open()
    return engine


def frozen(engine: Engine, container_id: str) -> bool:
    root = engine.state_dir / "runtime"
    found = freezer.find(StateDir(root, container_id).load().cgroup_dirs)
    assert found is not None, "no freezer cgroup"
    return freezer.is_frozen(found)


async def remove_all(engine: Engine, state: Path) -> None:
    for record in list(engine.records.values()):
        await engine.remove(record.id, force=True)
    await engine.close()
    await tear_down_worker(state)


def test_a_paused_container_stays_paused_across_a_worker_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        first = await open_engine(state)
        record = await first.create(ContainerSpec(image="busybox", command=["sleep", "600"]))
        await first.start(record.id)
        pid = record.state.pid
        await first.changes.pause(record.id)
        assert frozen(first, record.id)
        await first.close()  # the worker goes away; the container stays, frozen
        second = await open_engine(state)
        try:
            again = second.find(record.id)
            assert (again.state.status, again.state.pid) == ("paused", pid)
            assert frozen(second, record.id)
            assert [row.id for row in second.ps()] == [record.id]  # ps shows it, as docker
            with pytest.raises(Conflict, match="already paused"):
                await second.changes.pause(record.id)
            await second.changes.unpause(record.id)
            assert not frozen(second, record.id)
            assert second.find(record.id).state.status == "running"
            assert await second.top(record.id) == [pid]
        finally:
            await remove_all(second, state)

    run(main, timeout=90)
    shutil.rmtree(state, ignore_errors=True)


def test_samples_and_a_refused_update(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        engine = await open_engine(state)
        try:
            # Its shell holds ~16 MB in a variable: with no swap to move it to, the kernel
            # refuses a limit under that (EBUSY), and nothing changes.
            spec = ContainerSpec(image="busybox", command=[
                "sh", "-c", "x=$(head -c 16000000 /dev/zero | tr '\\0' a); exec sleep 600"],
                network="bridge", resources=Resources(memory=64 << 20, pids=20))
            record = await engine.create(spec)
            await engine.start(record.id)
            _, sample = await engine.changes.sample(record.id)
            deadline = asyncio.get_running_loop().time() + 30
            while sample.memory_max_usage < 16_000_000:  # the shell has filled its variable
                assert asyncio.get_running_loop().time() < deadline, sample
                _, sample = await engine.changes.sample(record.id)
            assert sample.memory_limit == 64 << 20 and sample.pids_limit == 20
            assert sample.cpu_total > 0 and sample.system_cpu > sample.cpu_total
            assert sample.online_cpus >= 1 and sample.time > 0
            assert set(sample.networks) == {"eth0"}
            assert "cache" in sample.memory_stats

            with pytest.raises(ShoalError):
                await engine.changes.update(UpdateContainer(
                    id=record.id, memory=8 << 20, reply=wire_ref(RefKind.SENDER, 1)))
            assert engine.find(record.id).spec.resources.memory == 64 << 20

            await engine.stop(record.id, timeout=0)
            _, idle = await engine.changes.sample(record.id)
            assert idle.time == 0 and idle.memory_usage == 0
        finally:
            await remove_all(engine, state)

    run(main, timeout=90)
    shutil.rmtree(state, ignore_errors=True)
