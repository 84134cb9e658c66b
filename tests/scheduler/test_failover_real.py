"""The leading scheduler killed with SIGKILL while a real worker runs real containers: the
standby takes over, the worker follows it, and nothing is lost, restarted or duplicated."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path

import pytest

import channels
from cli.dev import DevCluster
from cli.images import upload_to
from protocol.messages import (
    ContainerList,
    ListContainers,
    ListNodes,
    NodeList,
    SubmitJob,
    Submitted,
)
from protocol.specs import ContainerSpec, RestartPolicy
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.process_logs import wait_for_log
from tests.helpers.scheduler_processes import scheduler_args
from worker.images.testimage import build_layout
from worker.runtime.client import RuntimeHelper
from worker.teardown import tear_down_worker

pytestmark = pytest.mark.root


def test_standby_takes_over_and_the_worker_keeps_its_containers(tmp_path: Path) -> None:
    procs = DevCluster(tmp_path, "", workers=0)  # its process plumbing, not its start()
    etcd = EmbeddedEtcd(tmp_path / "etcd")

    async def listing(address: str) -> ContainerList:
        async with await cluster_keys.connect(address) as conn:
            reply = await channels.request(conn.sender, lambda r: ListContainers(all=True,
                                                                                reply=r))
        assert isinstance(reply, ContainerList)
        return reply

    async def submit(address: str, name: str) -> list[str]:
        spec = ContainerSpec(image="busybox", name=name, command=["sleep", "3600"],
                             restart=RestartPolicy(name="always"))
        async with await cluster_keys.connect(address) as conn:
            reply = await channels.request(conn.sender, lambda r: SubmitJob(
                spec=spec, replicas=2, reply=r))
        assert isinstance(reply, Submitted)
        assert len(reply.ids) == 2, reply.refused
        return reply.ids

    async def main() -> None:
        await asyncio.to_thread(etcd.start)
        try:
            leader = await procs.launch("a", scheduler_args(etcd, tmp_path, "a"))
            first = procs.ready["a"]["LISTEN"]
            assert procs.ready["a"]["ROLE"] == "leader"
            standby = await procs.launch("b", scheduler_args(etcd, tmp_path, "b"))
            second = procs.ready["b"]["LISTEN"]
            assert procs.ready["b"]["LEADER"] == first  # it follows a: workers are sent there
            with tempfile.TemporaryDirectory() as tmp:
                layout = await asyncio.to_thread(build_layout, Path(tmp) / "busybox")
                await asyncio.to_thread(upload_to, first, layout, "busybox:latest")
            await procs.launch("w1", [
                "worker", "--join", f"{first},{second}", "--listen", "tcp://127.0.0.1:0",
                "--state-dir", str(tmp_path / "w1"), "--name", "w1",
                "--token", await asyncio.to_thread(cluster_keys.join_token, first)])
            ids = await submit(first, "svc")

            async def running_on(address: str, want: set[str]) -> bool:
                rows = (await listing(address)).containers
                return {r.id for r in rows if r.state.status == "running"} >= want

            async with ClusterEvents(first) as events:
                await events.until(lambda: running_on(first, set(ids)))
            pids = {r.id: r.state.pid for r in (await listing(first)).containers}

            leader.send_signal(signal.SIGKILL)
            leader.wait(10)
            await wait_for_log(tmp_path / "b.log", "leading the cluster", standby)

            async def rejoined() -> bool:  # the worker's second join, at the new leader
                async with await cluster_keys.connect(second) as conn:
                    nodes = await channels.request(conn.sender, lambda r: ListNodes(reply=r))
                assert isinstance(nodes, NodeList)
                return any(n.id == "w1" and n.epoch >= 2 and n.status == "ready"
                           for n in nodes.nodes)

            async with ClusterEvents(second) as events:
                await events.until(rejoined)
                await events.until(lambda: running_on(second, set(ids)))
                after = {r.id: r.state.pid for r in (await listing(second)).containers}
                assert after == pids  # the same processes: kept running, not restarted
                more = await submit(second, "more")  # the new leader places new work
                await events.until(lambda: running_on(second, set(ids) | set(more)))
            helper = await RuntimeHelper.connect(tmp_path / "w1" / "runtime")
            try:
                states = await helper.list()
            finally:
                await helper.close()
            running = sorted(s.id for s in states if s.status == "running")
            assert running == sorted([*ids, *more])  # each exactly once
        finally:
            await procs.stop()
            await tear_down_worker(tmp_path / "w1")
            await asyncio.to_thread(etcd.stop)

    run(main, timeout=120)
