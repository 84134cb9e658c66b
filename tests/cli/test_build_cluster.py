"""``shoal build`` against a scheduler: the build runs on a worker of the cluster (which
fetches the base image from the scheduler) and the image lands in the cluster's store, where
``shoal run`` finds it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from cli.dev import DevCluster
from tests.helpers.bounded_run import run
from tests.helpers.worker_process import shoal_at

pytestmark = pytest.mark.root


def test_a_build_through_the_scheduler_lands_in_the_cluster_store(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=1)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY note.txt /note.txt\n"
                                    "RUN cat /note.txt > /built\nCMD [\"cat\", \"/built\"]\n")
    (ctx / "note.txt").write_text("built in the cluster\n")

    def shoal(*args: str) -> subprocess.CompletedProcess[str]:
        return shoal_at(cluster.address, *args, timeout=120)

    async def main() -> None:
        await cluster.start()
        try:
            built = await asyncio.to_thread(shoal, "build", "-t", "clustered:1", str(ctx))
            assert built.returncode == 0, built.stdout + built.stderr
            assert "fetching busybox from the cluster's images" in built.stdout
            assert "Built on node worker1" in built.stdout
            assert "Successfully tagged clustered:1" in built.stdout
            listed = await asyncio.to_thread(shoal, "images")
            assert "clustered" in listed.stdout  # the scheduler's own store
            ran = await asyncio.to_thread(shoal, "run", "--rm", "clustered:1")
            assert ran.stdout == "built in the cluster\n", ran.stderr
            bad = await asyncio.to_thread(shoal, "build", "--platform", "windows/amd64",
                                          str(ctx))
            assert bad.returncode == 1
            assert "0/1 nodes can run this build: 1 platform linux/" in bad.stderr
        finally:
            await cluster.stop()

    run(main, timeout=300)
