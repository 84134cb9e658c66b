"""The process driver's limits on Linux: a cgroup of the container's own, made before the
command starts and entered between fork and exec, with the native driver's values; what it
leaves is killed and the cgroup removed; and, end to end through the engine, a container over
its memory limit is killed by the kernel (the limit is held, not just written down); and
--ulimit set on the command between fork and exec."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from protocol.errors import Unsupported
from protocol.specs import ContainerSpec, Resources, Ulimit
from tests.helpers.bounded_run import run
from worker.engine.engine import Engine
from worker.engine.process_driver import ProcessDriver
from worker.hostos import HOST, JobLimits, cgroup_limits

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux cgroups")


@pytest.mark.parametrize(("limits", "controllers", "options"), [
    (JobLimits(), set(), ""),
    (JobLimits(memory=1 << 20), {"memory"}, "--memory"),
    (JobLimits(memory_swap=-1), {"memory"}, "--memory-swap"),
    (JobLimits(millicpus=500, cpu_shares=512), {"cpu"}, "--cpus, --cpu-shares"),
    (JobLimits(processes=10), {"pids"}, "--pids-limit"),
])
def test_the_controllers_each_limit_needs(limits: JobLimits, controllers: set[str],
                                          options: str) -> None:
    assert cgroup_limits.controllers(limits) == controllers
    assert cgroup_limits.asked(limits) == bool(controllers)
    assert cgroup_limits._options(limits) == options


def test_limits_become_the_native_drivers_resources() -> None:
    res = cgroup_limits.resources(JobLimits(memory=64 << 20, millicpus=1500, processes=7,
                                            cpu_shares=256, memory_swap=128 << 20))
    assert res.memory is not None and res.cpu is not None and res.pids is not None
    assert (res.memory.limit, res.memory.swap) == (64 << 20, 128 << 20)
    assert (res.cpu.quota, res.cpu.period, res.cpu.shares) == (150_000, 100_000, 256)
    assert res.pids.limit == 7
    assert cgroup_limits.resources(JobLimits()).memory is None


def _cgroup_file(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return Path("/sys/fs/cgroup", controller) / path.lstrip("/")
    raise AssertionError(f"{pid} has no {controller} cgroup")


@pytest.mark.root
def test_the_command_runs_in_its_cgroup_from_the_start_and_leaves_nothing() -> None:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("written for a cgroup v1 (or hybrid) host's file names")
    limits = JobLimits(memory=64 << 20, millicpus=500, processes=20)
    assert HOST.refuse_limits(limits) == ""
    container_id = f"c3test-{uuid.uuid4().hex[:12]}"
    confinement = HOST.confine(container_id, limits)
    options = confinement.popen_options()
    assert options.preexec_fn is not None
    # The command reports its own cgroups before doing anything else, and leaves a process
    # that escapes its process group (setsid): the cgroup holds that one too.
    leader = subprocess.Popen(["sh", "-c", "cat /proc/self/cgroup; echo --; "
                                           "setsid sleep 300 & echo $!; wait"],
                              stdout=subprocess.PIPE, text=True,
                              start_new_session=options.start_new_session,
                              preexec_fn=options.preexec_fn)
    confinement.adopt(leader.pid)
    try:
        assert leader.stdout is not None
        first = list(iter(leader.stdout.readline, "--\n"))
        assert any(line.endswith(f"/shoal/{container_id}\n") and ":memory:" in line
                   for line in first)
        memory = _cgroup_file(leader.pid, "memory")
        assert memory.name == container_id
        assert int((memory / "memory.limit_in_bytes").read_text()) == 64 << 20
        cpu = _cgroup_file(leader.pid, "cpu")
        assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50_000
        assert (_cgroup_file(leader.pid, "pids") / "pids.max").read_text().strip() == "20"
        escaped = int(leader.stdout.readline())
        assert escaped in [int(p) for p in (memory / "cgroup.procs").read_text().split()]
    finally:
        confinement.end_rest()
        leader.wait(10)
        confinement.close()
    assert not memory.exists() and not cpu.exists()
    assert not Path(f"/proc/{escaped}").exists() or \
        Path(f"/proc/{escaped}/stat").read_text().split()[2] == "Z"


def sh(script: str, resources: Resources) -> ContainerSpec:
    return ContainerSpec(image="host", command=["sh", "-c", script], resources=resources)


@pytest.mark.root
def test_a_container_over_its_memory_limit_is_killed(tmp_path: Path) -> None:
    async def main() -> None:
        engine = Engine(tmp_path / "state", ProcessDriver(tmp_path / "state" / "containers"))
        await engine.open()
        try:
            # 256 MiB touched, 32 MiB allowed: the kernel's OOM killer ends it (SIGKILL).
            hog = await engine.create(sh(
                f"exec {sys.executable} -c \"b = b'x' * (256 << 20); print('survived')\"",
                Resources(memory=32 << 20)))
            await engine.start(hog.id)
            state = await engine.wait(hog.id)
            assert state.exit_code == 137
            assert [e.data async for e in engine.logs(hog.id)] == []
            # Within its limit it runs to the end.
            fits = await engine.create(sh(
                f"{sys.executable} -c \"b = b'x' * (4 << 20); print('fits')\"",
                Resources(memory=128 << 20, millicpus=500, pids=50)))
            await engine.start(fits.id)
            assert (await engine.wait(fits.id)).exit_code == 0
            assert [e.data async for e in engine.logs(fits.id)] == [b"fits\n"]
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()

    run(main, timeout=60)


def test_limits_are_refused_where_no_cgroup_can_hold_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroup_limits, "LINUX", False)
    assert cgroup_limits.refusal(JobLimits(memory=1 << 20, millicpus=100)) == \
        "--memory, --cpus: limits need Linux cgroups (or a Windows job)"
    assert cgroup_limits.refusal(JobLimits()) == ""

    async def main() -> None:
        engine = Engine(tmp_path / "state", ProcessDriver(tmp_path / "state" / "containers"))
        await engine.open()
        try:
            with pytest.raises(Unsupported, match="process driver on this host cannot honour "
                                                  "--pids-limit: limits need Linux cgroups"):
                await engine.create(sh("true", Resources(pids=5)))
            assert engine.records == {}
        finally:
            await engine.close()

    run(main, timeout=30)


def test_ulimits_reach_a_process_driver_container(tmp_path: Path) -> None:
    async def main() -> None:
        engine = Engine(tmp_path / "state", ProcessDriver(tmp_path / "state" / "containers"))
        await engine.open()
        try:
            record = await engine.create(ContainerSpec(
                image="host", command=["sh", "-c", "ulimit -Sn; ulimit -Hn"],
                ulimits=[Ulimit(name="nofile", soft=100, hard=200)]))
            await engine.start(record.id)
            assert (await engine.wait(record.id)).exit_code == 0
            assert [e.data async for e in engine.logs(record.id)] == [b"100\n", b"200\n"]
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()

    run(main, timeout=30)
