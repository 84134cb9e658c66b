"""Volumes and healthchecks on a 2-worker dev cluster (real processes, native runtime): a
volume pins its container to its node, a refusal says so by counts, ``volume ls`` lists each
volume with its node, rm is refused while used; a container's health reaches the cluster's
``ps``, ``inspect`` and events, and ``wait --condition healthy`` through the scheduler."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from cli.dev import DevCluster
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.worker_process import shoal_at

pytestmark = pytest.mark.root


def test_volumes_pin_placement_and_health_reaches_the_cluster(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=2)

    def shoal(*args: str) -> subprocess.CompletedProcess[str]:
        return shoal_at(cluster.address, *args, timeout=60)

    async def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(shoal, *args)

    async def main() -> None:
        await cluster.start()
        try:
            async with ClusterEvents(cluster.address) as events:
                unsaid = await sh("volume", "create", "data")
                assert unsaid.returncode == 1
                assert "a volume lives on one node: give --node (the cluster has 2 ready " \
                       "nodes: worker1, worker2)" in unsaid.stderr
                made = await sh("volume", "create", "--node", "worker2", "-l", "k=v", "data")
                assert made.returncode == 0, made.stderr

                async def listed() -> bool:
                    return (await sh("volume", "ls")).stdout.splitlines()[1:] == [
                        "local    data          worker2"]

                await events.until(listed)
                for replica in range(3):  # whatever spread says, the volume decides
                    ran = await sh("run", "-d", "--name", f"user{replica}", "-v", "data:/data",
                                   "busybox", "sh", "-c", f"echo {replica} > /data/r{replica}"
                                   "; sleep 600")
                    assert ran.returncode == 0, ran.stderr
                    node = await sh("inspect", "--format", "{{.Node.ID}}", f"user{replica}")
                    assert node.stdout == "worker2\n"
                refused = await sh("run", "-d", "--name", "elsewhere", "-v", "data:/data",
                                   "-c", "node==worker1", "busybox", "true")
                assert refused.returncode == 125  # docker run's: the service refused
                assert "0/2 nodes available: 1 constraint node==worker1, 1 volume data is " \
                       "on worker2" in refused.stderr, refused.stderr
                in_use = await sh("volume", "rm", "data")
                assert in_use.returncode == 1
                assert "volume data on worker2 is in use by 3 containers: user0, user1, " \
                       "user2" in in_use.stderr
                [info] = json.loads((await sh("volume", "inspect", "data")).stdout)
                assert (info["node_id"], info["spec"]["labels"]) == ("worker2", {"k": "v"})
                assert info["users"] == ["user0", "user1", "user2"]

                checked = await sh("run", "-d", "--name", "hc", "--health-cmd", "true",
                                   "--health-interval", "100ms", "busybox", "sleep", "600")
                assert checked.returncode == 0, checked.stderr

                async def up() -> bool:  # on its worker: wait is forwarded there
                    rows = (await sh("ps", "--format", "{{.Names}} {{.Status}}")).stdout
                    return any(r.startswith("hc Up") for r in rows.splitlines())

                await events.until(up)
                waited = await sh("wait", "--condition", "healthy", "hc")
                assert waited.stdout == "healthy\n", waited.stderr

                async def healthy_in_ps() -> bool:
                    rows = (await sh("ps", "--format", "{{.Names}} {{.Status}}")).stdout
                    return any(r.startswith("hc Up") and r.endswith("(healthy)")
                               for r in rows.splitlines())

                await events.until(healthy_in_ps)
                status = await sh("inspect", "--format", "{{.State.Health.Status}}", "hc")
                assert status.stdout == "healthy\n"

                async def health_event() -> bool:
                    return any(e.id == "hc" and e.action == "health_status: healthy"
                               for e in events.seen)

                await events.until(health_event)

                removed = await sh("rm", "-f", "user0", "user1", "user2", "hc")
                assert removed.returncode == 0, removed.stderr

                async def unused() -> bool:
                    rm = await sh("volume", "rm", "data")
                    return rm.returncode == 0

                await events.until(unused)  # once the removals reached the workers
                pruned = await sh("volume", "prune", "-a", "-f")
                assert pruned.returncode == 0, pruned.stderr
        finally:
            await cluster.stop()

    run(main, timeout=180)
