"""The cluster end to end with real processes: shoal dev, and a worker killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import channels
from cli.dev import DevCluster
from protocol.errors import Unavailable
from protocol.messages import ContainerList, ListContainers, SubmitJob, Submitted
from protocol.specs import ContainerSpec, RestartPolicy
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.process_logs import wait_for_log
from tests.helpers.worker_process import shoal_at
from worker.runtime.client import RuntimeHelper

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.root


def test_shoal_dev_example_spreads_a_constrained_job_and_cleans_up() -> None:
    dev = subprocess.Popen(
        [sys.executable, "-m", "cli", "dev", "--example", "--listen", "tcp://127.0.0.1:0"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = dev.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        dev.send_signal(signal.SIGINT)  # it stops its cluster on Ctrl-C: nothing left behind
        out, err = dev.communicate(timeout=60)
        raise AssertionError(f"shoal dev --example hung:\n{out}{err}") from None
    assert dev.returncode == 0, out + err
    assert "6 placed" in out
    rows = [line for line in out.splitlines() if line.startswith("│ hello.")]
    assert len(rows) == 6
    assert {"worker1", "worker3"} == {node for row in rows for node in ("worker1", "worker2",
                                                                         "worker3") if node in row}
    assert "(through the scheduler, from its worker): hello from hello." in out
    assert "shoal dev: stopped" in out
    address = re.search(r"a scheduler on (tcp://127\.0\.0\.1:\d+) and", out)
    assert address is not None, out  # the port its scheduler chose
    leftovers = subprocess.run(["pgrep", "-f", f"--join {address[1]}"], capture_output=True)
    assert leftovers.stdout == b""


def test_a_cluster_that_fails_to_start_leaves_nothing_running(tmp_path: Path) -> None:
    """A worker that cannot start (a file where its state dir goes): start raises, and the
    scheduler and etcd it had started are stopped, not left to the caller."""
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=1, heartbeat=0.2)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "worker1").write_text("in the way\n")
    spawned: list[subprocess.Popen[bytes]] = []
    spawn = cluster._spawn

    def recorded(name: str, args: list[str],
                 pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        proc = spawn(name, args, pass_fds)
        spawned.append(proc)
        return proc

    cluster._spawn = recorded  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="worker1 exited"):
        run(cluster.start, timeout=120)
    assert [proc.args[3] for proc in spawned] == ["scheduler", "worker"]
    assert all(proc.poll() is not None for proc in spawned)
    assert cluster.processes == []


def test_a_killed_worker_s_containers_move_and_never_run_twice(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=2, heartbeat=0.2,
                         node_timeout=1.5)

    async def listing(conn: channels.Connection) -> ContainerList:
        reply = await channels.request(conn.sender, lambda r: ListContainers(all=True, reply=r))
        assert isinstance(reply, ContainerList)
        return reply

    async def main() -> None:
        await cluster.start()
        try:
            async with await cluster_keys.connect(cluster.address) as conn, \
                    ClusterEvents(cluster.address) as events:
                spec = ContainerSpec(image="busybox", name="svc", command=[
                    "sh", "-c", "while :; do sleep 1; done"],
                    restart=RestartPolicy(name="always"))
                submitted = await channels.request(conn.sender, lambda r: SubmitJob(
                    spec=spec, replicas=4, reply=r))
                assert isinstance(submitted, Submitted)
                assert len(submitted.ids) == 4

                async def all_running() -> bool:
                    rows = (await listing(conn)).containers
                    return len(rows) == 4 and all(r.state.status == "running" for r in rows)

                await events.until(all_running)
                first = {r.id: r.node_id for r in (await listing(conn)).containers}
                assert set(first.values()) == {"worker1", "worker2"}
                victim = next(p for name, p in cluster.processes if name == "worker1")
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)

                async def moved() -> bool:
                    rows = (await listing(conn)).containers
                    return all(r.node_id == "worker2" and r.state.status == "running"
                               for r in rows) and len(rows) == 4

                await events.until(moved)
                # worker1 comes back: its old copies (still running under its runtime helper)
                # are revoked; the cluster still runs each container exactly once.
                cluster.processes.remove(("worker1", victim))
                proc = cluster._spawn("worker1", [
                    "worker", "--join", cluster.address, "--listen", "tcp://127.0.0.1:0",
                    "--state-dir", str(cluster.state_dir / "worker1"), "--name", "worker1"])
                await wait_for_log(cluster.state_dir / "worker1.log", '"stopping a copy"',
                                   proc)
                helper = await RuntimeHelper.connect(cluster.state_dir / "worker1" / "runtime")
                try:  # each old copy's exit, as the runtime that runs it reports it
                    for state in await helper.list():
                        if state.status == "running":
                            await asyncio.wait_for(helper.wait(state.id), 30)
                    assert not [s for s in await helper.list() if s.status == "running"]
                finally:
                    await helper.close()
                rows = (await listing(conn)).containers
                assert {r.node_id for r in rows} == {"worker2"}
                assert all(r.state.status == "running" for r in rows)
        finally:
            await cluster.stop()

    run(main, timeout=120)


def test_the_cli_against_the_cluster_run_exec_logs(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=1)

    def shoal(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return shoal_at(cluster.address, *args, stdin=stdin, timeout=60)

    async def main() -> None:
        await cluster.start()
        try:
            ran = await asyncio.to_thread(shoal, "run", "--rm", "busybox", "sh", "-c",
                                          "echo out; echo err >&2; exit 4")
            assert (ran.returncode, ran.stdout, ran.stderr) == (4, "out\n", "err\n")
            assert (await asyncio.to_thread(shoal, "ps", "-aq")).stdout == ""  # --rm
            started = await asyncio.to_thread(shoal, "run", "-d", "--name", "svc", "busybox",
                                              "sh", "-c", "echo up; sleep 600")
            assert started.returncode == 0, started.stderr
            piped = await asyncio.to_thread(shoal, "exec", "-i", "svc", "cat",
                                            stdin="a\nb\n")
            assert (piped.returncode, piped.stdout) == (0, "a\nb\n"), piped.stderr
            assert (await asyncio.to_thread(shoal, "logs", "svc")).stdout == "up\n"
            removed = await asyncio.to_thread(shoal, "rm", "-f", "svc")
            assert removed.returncode == 0, removed.stderr
        finally:
            await cluster.stop()

    run(main, timeout=120)
