"""``shoal compose up`` through a scheduler (a 2-worker dev cluster, native runtime): the
containers an ``up`` makes are created all at once or not at all, so an app with one service
that fits nowhere leaves nothing behind and one explanation names that service and why."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.dev import DevCluster
from tests.helpers.bounded_run import run

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

APP = """\
services:
  small:
    image: busybox
    command: sleep 600
    stop_grace_period: 1s
  other:
    image: busybox
    command: sleep 600
    depends_on: [small]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [{where}]
"""


def test_an_app_that_does_not_fit_creates_nothing(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=2)
    project = f"aon{os.getpid() % 10000}"

    def shoal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT),
                                   "SHOAL_HOST": cluster.address,
                                   "XDG_CACHE_HOME": str(tmp_path / "cache")},
                              capture_output=True, text=True, timeout=120)

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
                             f"Container {project}-small-1  Started",
                             f"Container {project}-other-1  Started"], fits.stdout
            again = await asyncio.to_thread(compose, "node.id == worker2", "up", "-d")
            assert "Created" not in again.stdout and again.returncode == 0
            down = await asyncio.to_thread(compose, "node.id == worker2", "down")
            assert down.returncode == 0, down.stderr
        finally:
            await cluster.stop()

    run(main, timeout=280)
