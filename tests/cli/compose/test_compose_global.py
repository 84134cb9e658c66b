"""Global jobs on a dev cluster (real scheduler, real workers on the native runtime): ``shoal
run --mode global`` and compose's ``deploy.mode: global`` run one container on every eligible
node, one more on a worker that joins later; ``ps`` and ``compose ps`` show them, a second ``up``
changes nothing, ``down`` and ``rm NAME`` leave nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from cli.dev import DevCluster
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents
from tests.helpers.worker_process import shoal_at

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

# network_mode none: the dev cluster's workers share one kernel, where only one of them can
# hold a project overlay's VXLAN device. worker1 is rack r1: the constraint keeps it out.
APP = """\
services:
  mon:
    image: busybox
    command: sleep 600
    stop_grace_period: 1s
    network_mode: none
    deploy:
      mode: global
      placement:
        constraints: [node.labels.rack != r1]
"""


def test_global_jobs_follow_the_nodes(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=2)
    project = f"glob{os.getpid() % 10000}"

    def shoal(*args: str) -> subprocess.CompletedProcess[str]:
        return shoal_at(cluster.address, *args, timeout=120,
                        env={"XDG_CACHE_HOME": str(tmp_path / "cache")})

    (tmp_path / "compose.yaml").write_text(APP)

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return shoal("compose", "-f", str(tmp_path / "compose.yaml"), "-p", project, *args)

    async def running() -> dict[str, str]:
        rows = (await asyncio.to_thread(shoal, "ps", "--format",
                                        "{{.Names}} {{.Status}}")).stdout
        return {row.split()[0]: row for row in rows.splitlines() if " Up " in f"{row} "}

    async def main() -> None:
        await cluster.start()
        try:
            async with ClusterEvents(cluster.address) as events:
                ran = await asyncio.to_thread(shoal, "run", "-d", "--mode", "global",
                                              "--name", "agent", "--network", "none",
                                              "busybox", "sleep", "600")
                assert ran.returncode == 0, ran.stderr
                assert ran.stdout.split() == ["agent.worker1", "agent.worker2"]
                up = await asyncio.to_thread(compose, "up", "-d")
                assert up.returncode == 0, up.stdout + up.stderr
                assert f"Container {project}-mon.worker2  Started" in up.stdout, up.stdout
                expected = {"agent.worker1", "agent.worker2", f"{project}-mon.worker2"}

                async def all_up() -> bool:
                    return set(await running()) == expected

                await events.until(all_up)
                # A worker that joins later takes a container of each job.
                await cluster.launch("worker3", [
                    "worker", "--join", cluster.address, "--listen", "tcp://127.0.0.1:0",
                    "--state-dir", str(cluster.state_dir / "worker3"), "--name", "worker3",
                    "--label", "rack=r3", "--token", await cluster.worker_token()])
                expected |= {"agent.worker3", f"{project}-mon.worker3"}
                await events.until(all_up)
                shown = await asyncio.to_thread(compose, "ps")
                assert shown.returncode == 0, shown.stderr
                assert f"{project}-mon.worker3" in shown.stdout
                # Unchanged: a second up touches nothing.
                again = await asyncio.to_thread(compose, "up", "-d")
                assert sorted(line for line in again.stdout.splitlines()
                              if line.startswith("Container")) == [
                    f"Container {project}-mon.worker2  Running",
                    f"Container {project}-mon.worker3  Running"], again.stdout + again.stderr
                # A replica is not removed alone; the job's name removes them all.
                alone = await asyncio.to_thread(shoal, "rm", "-f", "agent.worker1")
                assert alone.returncode == 1 and "a replica of global job agent" in \
                    alone.stderr, alone.stderr
                down = await asyncio.to_thread(compose, "down")
                assert down.returncode == 0, down.stderr
                assert f"Container {project}-mon.worker3  Removed" in down.stdout
                removed = await asyncio.to_thread(shoal, "rm", "agent")
                assert removed.returncode == 0, removed.stderr

                async def none_left() -> bool:
                    listed = await asyncio.to_thread(shoal, "ps", "-aq")
                    return listed.stdout.strip() == ""

                await events.until(none_left)
        finally:
            await cluster.stop()

    run(main, timeout=280)
