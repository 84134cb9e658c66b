"""The engine on the native driver: the busybox test image, real namespaces, cgroups, mounts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import channels
from protocol.errors import NotFound
from protocol.specs import ContainerSpec, Mount, Resources, RestartPolicy, Ulimit
from tests.helpers.bounded_run import run
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.images.testimage import import_test_image
from worker.runtime.state import StateDir
from worker.teardown import tear_down_worker

pytestmark = pytest.mark.root


def busybox(*command: str, **fields: object) -> ContainerSpec:
    return ContainerSpec(image="busybox", command=list(command), **fields)  # type: ignore[arg-type]


async def open_engine(state: Path) -> Engine:
    driver = await NativeDriver.open(state)
    if not driver.store.images():
        await asyncio.to_thread(import_test_image, driver.store)
    engine = Engine(state, driver, images=NativeImages(driver.store))
    await engine.open()
    return engine


def with_engine(tmp_path: Path, body: Callable[[Engine], Awaitable[None]]) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        engine = await open_engine(state)
        try:
            await body(engine)
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()
            await tear_down_worker(state)

    run(main, timeout=90)
    shutil.rmtree(state, ignore_errors=True)


def test_run_in_namespaces_with_image_defaults(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(busybox(
            "sh", "-c", "hostname; id -u; echo $PATH; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
            "ls /proc | grep -c '^[0-9]'", hostname="box1", user="1000:1000"))
        await engine.start(record.id)
        state = await engine.wait(record.id)
        assert state.exit_code == 0
        lines = [e.data.decode().strip() async for e in engine.logs(record.id)]
        assert lines[0] == "box1"
        assert lines[1] == "1000"
        assert "/usr/bin" in lines[2]
        assert lines[3].startswith("sh -c")  # the command is PID 1 of its own pid namespace
        assert int(lines[4]) <= 3  # only the container's own processes are visible
        info = engine.inspect(record.id)
        assert info.runtime == "native"
        assert info.storage_driver in ("overlay", "copy")
        assert info.image_id.startswith("sha256:")

    with_engine(tmp_path, body)


def test_image_cmd_is_the_default_command_and_missing_images_are_refused(tmp_path: Path
                                                                         ) -> None:
    async def body(engine: Engine) -> None:
        with pytest.raises(NotFound):
            await engine.create(ContainerSpec(image="nosuch:image", command=["true"]))
        record = await engine.create(ContainerSpec(image="busybox"))
        assert record.argv() == ["sh"]

    with_engine(tmp_path, body)


def test_memory_limit_oom_and_pids_limit(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        hog = await engine.create(busybox(
            "sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while :; do x=$x$x; done",
            resources=Resources(memory=32 << 20)))
        await engine.start(hog.id)
        state = await engine.wait(hog.id)
        assert state.exit_code == 137
        assert state.oom_killed
        limited = await engine.create(busybox("sleep", "30", resources=Resources(
            pids=50, millicpus=500)))
        await engine.start(limited.id)
        driver = engine.driver
        assert isinstance(driver, NativeDriver)
        saved = StateDir(driver.runtime_root, limited.id).load()
        limits = {}
        for directory in saved.cgroup_dirs:
            for name in ("pids.max", "cpu.cfs_quota_us", "cpu.cfs_period_us"):
                path = Path(directory) / name
                if path.exists():
                    limits[name] = path.read_text().strip()
        assert limits == {"pids.max": "50", "cpu.cfs_quota_us": "50000",
                          "cpu.cfs_period_us": "100000"}

    with_engine(tmp_path, body)


def test_stop_restart_policy_and_exec(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        web = await engine.create(busybox("sh", "-c", "trap 'exit 0' TERM; "
                                          "while :; do sleep 0.05; done", name="web"))
        await engine.start("web")
        result = await engine.exec("web", ["sh", "-c", "echo in $(hostname); exit 4"])
        assert result.exit_code == 4
        assert result.output == f"in {web.id[:12]}\n".encode()
        assert len(await engine.top("web")) >= 1
        await engine.stop("web", timeout=5)
        assert web.state.exit_code == 0
        flaky = await engine.create(busybox("sh", "-c", "echo try; exit 1", restart=RestartPolicy(
            name="on-failure", max_retries=2)))
        events = channels.FeedReader(engine.events)
        await engine.start(flaky.id)
        dies = 0
        while dies < 3:
            dies += (await events.next()).action == "die"
        state = await engine.wait(flaky.id)
        assert state.restart_count == 2
        assert [e.data async for e in engine.logs(flaky.id)] == [b"try\n"] * 3

    with_engine(tmp_path, body)


def test_live_restore_on_the_native_driver(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gate = tmp_path / "gate"
    gate.mkdir()

    async def main() -> None:
        first = await open_engine(state)
        record = await first.create(busybox(
            "sh", "-c", "echo before; while [ ! -e /gate/go ]; do sleep 0.02; done; "
            "echo after; exit 6", mounts=[Mount(type="bind", source=str(gate), target="/gate")]))
        await first.start(record.id)
        await first.close()  # the worker goes away; the container and the helper stay
        (gate / "go").touch()  # the container ends while no worker watches it
        second = await open_engine(state)
        try:
            state_after = await second.wait(record.id)
            assert state_after.exit_code == 6
            assert [e.data async for e in second.logs(record.id)] == [b"before\n", b"after\n"]
        finally:
            for r in list(second.records.values()):
                await second.remove(r.id, force=True)
            await second.close()
            await tear_down_worker(state)

    run(main, timeout=90)


def test_network_workdir_entrypoint_and_labels(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        isolated = await engine.create(busybox("sh", "-c", "ls /sys/class/net | tr '\\n' ' '"))
        host = await engine.create(busybox("sh", "-c", "ls /sys/class/net | tr '\\n' ' '",
                                           network="host"))
        shaped = await engine.create(ContainerSpec(
            image="busybox", entrypoint=["/bin/echo"], command=["in", "$PWD"], workdir="/tmp",
            labels={"tier": "web"}))
        for record in (isolated, host, shaped):
            await engine.start(record.id)
            await engine.wait(record.id)
        isolated_ifs = b"".join([e.data async for e in engine.logs(isolated.id)]).split()
        host_ifs = b"".join([e.data async for e in engine.logs(host.id)]).split()
        assert isolated_ifs == [b"lo"]  # a network namespace of its own: loopback only
        assert set(host_ifs) == {name.encode() for name in os.listdir("/sys/class/net")}
        assert [e.data async for e in engine.logs(shaped.id)] == [b"in $PWD\n"]  # no shell
        assert shaped.argv() == ["/bin/echo", "in", "$PWD"]
        assert engine.inspect(shaped.id).spec.labels == {"tier": "web"}
        cwd = await engine.create(busybox("pwd", workdir="/tmp"))
        await engine.start(cwd.id)
        await engine.wait(cwd.id)
        assert [e.data async for e in engine.logs(cwd.id)] == [b"/tmp\n"]

    with_engine(tmp_path, body)


def test_loopback_is_up_in_every_network_namespace_of_its_own(tmp_path: Path) -> None:
    """As Docker does: 127.0.0.1 answers inside, even with ``--network none``."""
    async def body(engine: Engine) -> None:
        records = [await engine.create(busybox(
            "sh", "-c", "cat /sys/class/net/lo/flags; ping -c1 -W2 127.0.0.1 >/dev/null && "
            "echo reached")) for _ in range(3)]  # the later ones from the zygote's spares
        for record in records:
            await engine.start(record.id)
            assert (await engine.wait(record.id)).exit_code == 0
            lines = [e.data.decode().strip() async for e in engine.logs(record.id)]
            assert int(lines[0], 16) & 0x1  # IFF_UP
            assert lines[1] == "reached"

    with_engine(tmp_path, body)


def test_docker_default_seccomp_profile_unless_unconfined(tmp_path: Path) -> None:
    script = ("grep Seccomp: /proc/self/status; "
              "unshare -U -r -m true 2>/dev/null && echo unshared || echo refused")

    async def output(engine: Engine, spec: ContainerSpec) -> list[str]:
        record = await engine.create(spec)
        await engine.start(record.id)
        assert (await engine.wait(record.id)).exit_code == 0
        return [e.data.decode().strip() async for e in engine.logs(record.id)]

    async def body(engine: Engine) -> None:
        confined = await output(engine, busybox("sh", "-c", script))
        assert confined == ["Seccomp:\t2", "refused"]
        unconfined = await output(engine, busybox("sh", "-c", script, seccomp="unconfined"))
        assert unconfined[0] == "Seccomp:\t0"
        # A profile of the user's own, in Docker's format: mkdir refused with EACCES.
        own = ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
               '"action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}')
        denied = await output(engine, busybox(
            "sh", "-c", "mkdir /tmp/x 2>&1; true", seccomp=own))
        assert denied == ["mkdir: can't create directory '/tmp/x': Permission denied"]

    with_engine(tmp_path, body)


def test_ulimits_are_the_processes_rlimits(tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        record = await engine.create(busybox(
            "sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -Su; ulimit -Hc",
            ulimits=[Ulimit(name="nofile", soft=256, hard=512),
                     Ulimit(name="nproc", soft=64, hard=128),
                     Ulimit(name="core", soft=0, hard=-1)]))
        await engine.start(record.id)
        assert (await engine.wait(record.id)).exit_code == 0
        logs = b"".join([e.data async for e in engine.logs(record.id)])
        assert logs.split() == [b"256", b"512", b"64", b"unlimited"]

    with_engine(tmp_path, body)


def test_a_removed_at_exit_container_leaves_nothing_and_others_keep_their_files(
        tmp_path: Path) -> None:
    async def body(engine: Engine) -> None:
        driver = engine.driver
        assert isinstance(driver, NativeDriver)
        kept = await engine.create(busybox("true", network="bridge"))
        gone = await engine.create(busybox("sh", "-c", "echo bye", network="bridge",
                                           auto_remove=True))
        rootfs = {r.id: Path(r.driver_data["rootfs"]).parent for r in (kept, gone)}
        for record in (kept, gone):
            await engine.start(record.id)
        with contextlib.suppress(NotFound):  # NotFound: removed already
            await engine.wait(gone.id, "removed")
        assert (await engine.wait(kept.id)).exit_code == 0
        # The --rm one: its record, rootfs, bundle and network files gone with it.
        assert gone.id not in engine.records
        assert not rootfs[gone.id].exists()
        assert not (tmp_path / "state" / "containers" / gone.id).exists()
        # An exited one keeps all it needs to start again, and does.
        assert rootfs[kept.id].is_dir()
        assert (tmp_path / "state" / "containers" / kept.id / "bundle" / "config.json").is_file()
        await engine.start(kept.id)
        assert (await engine.wait(kept.id)).exit_code == 0

    with_engine(tmp_path, body)
