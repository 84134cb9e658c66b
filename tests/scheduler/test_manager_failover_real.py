"""Real processes across a failover: a worker on a wildcard listener that advertises an
address, joined to the leader only, reaches the standby it learned of when the leader is
killed; and the daemons refuse a wildcard listen without ``--advertise``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import channels
from cli.dev import DevCluster
from protocol.messages import ListNodes, NodeList
from protocol.observed import NodeInfo
from scheduler.store import EmbeddedEtcd
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.process_logs import wait_for_log
from tests.helpers.scheduler_processes import scheduler_args
from tests.helpers.worker_process import ROOT


async def node_info(address: str, node_id: str) -> NodeInfo | None:
    async with await cluster_keys.connect(address) as conn:
        nodes = await channels.request(conn.sender, lambda r: ListNodes(reply=r))
    assert isinstance(nodes, NodeList)
    return next((n for n in nodes.nodes if n.id == node_id), None)


def test_a_worker_joined_to_the_leader_only_follows_it_to_the_standby(tmp_path: Path) -> None:
    procs = DevCluster(tmp_path, "", workers=0)  # its process plumbing, not its start()
    etcd = EmbeddedEtcd(tmp_path / "etcd")

    async def main() -> None:
        await asyncio.to_thread(etcd.start)
        try:
            leader = await procs.launch("a", scheduler_args(etcd, tmp_path, "a"))
            first = procs.ready["a"]["LISTEN"]
            assert procs.ready["a"]["ROLE"] == "leader"
            standby = await procs.launch("b", scheduler_args(etcd, tmp_path, "b"))
            second = procs.ready["b"]["LISTEN"]
            await procs.launch("w1", [
                "worker", "--join", first, "--listen", "tcp://0.0.0.0:0",
                "--advertise", "127.0.0.1", "--driver", "process",
                "--state-dir", str(tmp_path / "w1"), "--name", "w1",
                "--token", await asyncio.to_thread(cluster_keys.join_token, first)])
            port = procs.ready["w1"]["LISTEN"].rpartition(":")[2]
            joined = await node_info(first, "w1")
            assert joined is not None and joined.address == f"tcp://127.0.0.1:{port}"
            assert procs.ready["a"]["ADVERTISE"] == first
            # The worker was told of both schedulers, and keeps them.
            kept = tmp_path / "w1" / "managers.json"
            async with ClusterEvents(first) as events:
                async def told() -> bool:
                    return kept.exists() and second in kept.read_text()
                await events.until(told, timeout=30)

            leader.send_signal(signal.SIGKILL)
            leader.wait(10)
            await wait_for_log(tmp_path / "b.log", "leading the cluster", standby)

            async def rejoined() -> bool:  # the worker's second join, at the new leader
                info = await node_info(second, "w1")
                return info is not None and info.epoch >= 2 and info.status == "ready"

            async with ClusterEvents(second) as events:
                await events.until(rejoined, timeout=60)
            info = await node_info(second, "w1")
            assert info is not None and info.address == f"tcp://127.0.0.1:{port}"
        finally:
            await procs.stop()
            await asyncio.to_thread(etcd.stop)

    run(main, timeout=120)


@pytest.mark.parametrize("args", [
    ["scheduler", "--listen", "tcp://0.0.0.0:0"],
    ["scheduler", "--listen", "tcp://[::]:0"],
    ["worker", "--join", "tcp://127.0.0.1:1", "--listen", "tcp://*:0"],
    ["worker", "--advertise", "10.0.0.5"],  # alone, a worker tells nobody its address
    ["worker", "--join", "tcp://127.0.0.1:1", "--advertise", "tcp://0.0.0.0:7376"],
])
def test_a_wildcard_without_advertise_is_a_usage_error(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cli", *args, "--state-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "--advertise" in result.stderr
