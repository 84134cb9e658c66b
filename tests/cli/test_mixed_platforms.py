"""A mixed Linux/Windows cluster with real processes: a scheduler and two process-driver
workers, one of which reports ``windows/amd64`` through the test-only
``--platform-override`` (a Linux host cannot run a Windows worker; the real one is exercised
by .github/workflows/windows.yml). Linux jobs land on the Linux worker, a ``--platform
windows`` job on the "Windows" one, and what fits nowhere is refused with the reasons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import channels
from cli.dev import DevCluster
from protocol.messages import (
    ContainerList,
    ListContainers,
    ListNodes,
    NodeList,
    SubmitJob,
    Submitted,
)
from protocol.specs import ContainerSpec, Platform
from tests.helpers import cluster_keys
from tests.helpers.bounded_run import run
from tests.helpers.cluster_events import ClusterEvents

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]


def test_the_override_is_refused_outside_tests(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k != "SHOAL_TEST_PLATFORM_OVERRIDE"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--driver", "process", "--state-dir",
         str(tmp_path / "w"), "--listen", "tcp://127.0.0.1:0", "--platform-override",
         "windows/amd64"], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--platform-override is for tests only" in done.stderr
    assert "SHOAL_TEST_PLATFORM_OVERRIDE=1" in done.stderr


@pytest.mark.parametrize(("given", "message"), [
    ("windows", "expected OS/ARCH"),
    ("plan9/amd64", "unknown operating system"),
    ("windows/x86_64/v1/x", "expected OS/ARCH"),
])
def test_a_bad_override_is_refused_by_name(tmp_path: Path, given: str, message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--driver", "process", "--state-dir",
         str(tmp_path / "w"), "--platform-override", given], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT),
             "SHOAL_TEST_PLATFORM_OVERRIDE": "1"},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr


def test_linux_jobs_on_linux_a_windows_job_on_windows_and_refusals_explained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = DevCluster(tmp_path / "dev", "tcp://127.0.0.1:0", workers=0, heartbeat=0.2)

    async def main() -> None:
        await cluster.start()
        try:
            token = await cluster.worker_token()
            for name, extra in (("worker-linux", []),
                                ("worker-windows", ["--platform-override", "windows/amd64"])):
                if extra:  # only this worker's environment says it is a test
                    monkeypatch.setenv("SHOAL_TEST_PLATFORM_OVERRIDE", "1")
                await cluster.launch(name, [
                    "worker", "--join", cluster.address, "--listen", "tcp://127.0.0.1:0",
                    "--state-dir", str(cluster.state_dir / name), "--name", name,
                    "--driver", "process", "--token", token, *extra])
                monkeypatch.delenv("SHOAL_TEST_PLATFORM_OVERRIDE", raising=False)
            async with await cluster_keys.connect(cluster.address) as conn:
                await mixed(conn)
        finally:
            await cluster.stop()

    async def mixed(conn: channels.Connection) -> None:
        nodes = await channels.request(conn.sender, lambda r: ListNodes(reply=r))
        assert isinstance(nodes, NodeList)
        platforms = {node.id: str(node.platform) for node in nodes.nodes}
        host = platforms["worker-linux"]
        assert host.startswith("linux/")
        assert platforms["worker-windows"] == "windows/amd64"

        async def submit(spec: ContainerSpec, replicas: int = 1) -> Submitted:
            answer = await channels.request(
                conn.sender, lambda r: SubmitJob(spec=spec, replicas=replicas, reply=r))
            assert isinstance(answer, Submitted), answer
            return answer

        # A Linux job (no platform means Linux), one per node at most: one replica fits,
        # the other is refused, and the Windows node is why.
        linux = await submit(ContainerSpec(image="host", name="lin", command=LONG_RUNNING,
                                           max_per_node=1), replicas=2)
        assert len(linux.ids) == 1
        assert "platform windows/amd64 ≠ linux/*" in linux.refused
        # A Windows job goes to the Windows node only.
        windows = await submit(ContainerSpec(image="host", name="win", command=LONG_RUNNING,
                                             platform=Platform(os="windows")), replicas=2)
        assert len(windows.ids) == 2, windows.refused
        # What no node has: every node's reason is counted.
        arm = await submit(ContainerSpec(image="host", name="arm", command=LONG_RUNNING,
                                         platform=Platform(os="windows", arch="arm64")))
        assert arm.ids == []
        assert "0/2 nodes" in arm.refused
        assert f"platform {host} ≠ windows/arm64" in arm.refused
        assert "platform windows/amd64 ≠ windows/arm64" in arm.refused

        wanted = {cid: "worker-linux" for cid in linux.ids} | \
            {cid: "worker-windows" for cid in windows.ids}
        placed: dict[str, tuple[str, str]] = {}

        async def all_running() -> bool:
            listing = await channels.request(conn.sender,
                                             lambda r: ListContainers(all=True, reply=r))
            assert isinstance(listing, ContainerList)
            placed.clear()
            placed.update({c.id: (c.node_id, c.state.status) for c in listing.containers})
            return all(placed.get(cid, ("", ""))[1] == "running" for cid in wanted)

        async with ClusterEvents(cluster.address) as events:
            await events.until(all_running, 60)
        assert {cid: placed[cid][0] for cid in wanted} == wanted

    run(main, timeout=180)
