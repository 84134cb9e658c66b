"""``shoal compose up`` through a scheduler (a 2-worker dev cluster, native runtime): the
containers an ``up`` makes are created all at once or not at all, so an app with one service
that fits nowhere leaves nothing behind and one explanation names that service and why; a
service with ``volumes_from`` runs beside its source, with its mounts."""

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

# network_mode none: the dev cluster's two workers share one kernel, where only one of them
# can hold a project overlay's VXLAN device (the multihost tests give each its own host).
APP = """\
services:
  small:
    image: busybox
    command: sleep 600
    stop_grace_period: 1s
    network_mode: none
    volumes: ["./conf:/conf"]
  reader:
    image: busybox
    command: sleep 600
    stop_grace_period: 1s
    network_mode: none
    volumes_from: ["small:ro"]
  other:
    image: busybox
    command: sleep 600
    depends_on: [small]
    stop_grace_period: 1s
    network_mode: none
    deploy:
      placement:
        constraints: [{where}]
"""


def test_an_app_that_does_not_fit_creates_nothing(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=2)
    project = f"aon{os.getpid() % 10000}"

    def shoal(*args: str) -> subprocess.CompletedProcess[str]:
        return shoal_at(cluster.address, *args, timeout=120,
                        env={"XDG_CACHE_HOME": str(tmp_path / "cache")})

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "note").write_text("a note\n")

    def compose(where: str, *args: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "compose.yaml").write_text(APP.replace("{where}", where))
        return shoal("compose", "-f", str(tmp_path / "compose.yaml"), "-p", project, *args)

    async def main() -> None:
        await cluster.start()
        try:
            refused = await asyncio.to_thread(compose, "node.labels.zone == nowhere", "up",
                                              "-d")
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert f"Error: service other cannot be placed, so nothing was created: " \
                   f"{project}-other-1 found no node: 0/2 nodes available: 2 constraint " \
                   "node.labels.zone==nowhere" in refused.stderr, refused.stderr
            assert "Container" not in refused.stdout
            listed = await asyncio.to_thread(shoal, "ps", "-a", "--format", "{{.Names}}")
            assert listed.stdout == "", listed.stdout
            # Where it fits, every container is created first, then each started in order.
            fits = await asyncio.to_thread(compose, "node.id == worker2", "up", "-d")
            assert fits.returncode == 0, fits.stdout + fits.stderr
            lines = [line for line in fits.stdout.splitlines() if line.startswith("Container")]
            assert lines == [f"Container {project}-small-1  Created",
                             f"Container {project}-other-1  Created",
                             f"Container {project}-reader-1  Created",
                             f"Container {project}-small-1  Started",
                             f"Container {project}-other-1  Started",
                             f"Container {project}-reader-1  Started"], fits.stdout
            # volumes_from: reader runs beside small, with small's bind mount (read-only).
            nodes = {}
            for service in ("small", "reader", "other"):
                shown = await asyncio.to_thread(shoal, "inspect", "--format",
                                                "{{.Node.ID}}", f"{project}-{service}-1")
                nodes[service] = shown.stdout.strip()
            assert nodes["other"] == "worker2" and nodes["small"] == nodes["reader"], nodes

            async def running() -> bool:
                rows = (await asyncio.to_thread(shoal, "ps", "--format",
                                                "{{.Names}} {{.Status}}")).stdout
                return sum(" Up " in f"{row} " for row in rows.splitlines()) == 3

            async with ClusterEvents(cluster.address) as events:
                await events.until(running)
            seen = await asyncio.to_thread(shoal, "exec", f"{project}-reader-1", "sh", "-c",
                                           "cat /conf/note; touch /conf/new")
            assert seen.stdout == "a note\n", seen.stdout + seen.stderr
            assert seen.returncode != 0 and "Read-only file system" in seen.stderr
            again = await asyncio.to_thread(compose, "node.id == worker2", "up", "-d")
            assert "Created" not in again.stdout and again.returncode == 0
            down = await asyncio.to_thread(compose, "node.id == worker2", "down")
            assert down.returncode == 0, down.stderr
        finally:
            await cluster.stop()

    run(main, timeout=280)
