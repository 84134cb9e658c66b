"""pause/unpause, update and stats through the dev cluster's scheduler (forwarded to the
container's worker; an update also kept in the cluster's record), and rename refused with the
reason."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.dev import DevCluster
from tests.helpers.docker_api import DOCKER_CLI, docker

pytestmark = pytest.mark.root

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    dev = DevCluster(tmp_path_factory.mktemp("apiverbscluster") / "dev", "tcp://127.0.0.1:0",
                     workers=2, heartbeat=0.2, node_timeout=2.0)
    asyncio.run(dev.start())
    try:
        yield dev
    finally:
        asyncio.run(dev.stop())


@pytest.fixture
def cli(cluster: DevCluster, tmp_path: Path) -> Cli:
    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker(cluster.docker, tmp_path, *args, **kwargs)  # type: ignore[arg-type]
    return run


def _status_becomes(cli: Cli, name: str, wanted: str, within: float = 20.0) -> None:
    """The scheduler's record learns a pause from the worker's report: wait for it."""
    deadline = time.monotonic() + within
    while (status := cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip()) != wanted:
        assert time.monotonic() < deadline, f"{name} stayed {status}, never {wanted}"


def test_pause_update_stats_through_the_scheduler(cli: Cli) -> None:
    name = f"cl-{secrets.token_hex(3)}"
    started = cli("run", "-d", "--name", name, "--memory", "64m", "busybox", "sleep", "600")
    assert started.returncode == 0, started.stderr
    try:
        assert cli("pause", name).returncode == 0
        _status_becomes(cli, name, "paused")
        again = cli("pause", name)
        assert again.returncode == 1 and "is already paused" in again.stderr
        assert cli("unpause", name).returncode == 0
        _status_becomes(cli, name, "running")

        updated = cli("update", "--memory", "96m", "--restart", "always", name)
        assert updated.returncode == 0, updated.stderr
        shown = json.loads(cli("inspect", "-f", "{{json .HostConfig}}", name).stdout)
        assert shown["Memory"] == 96 << 20  # the cluster's record has it
        assert shown["RestartPolicy"]["Name"] == "always"

        stats = cli("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}",
                    name)
        assert stats.returncode == 0, stats.stderr
        shown_name, _used, _slash, limit, pids = stats.stdout.split()
        assert (shown_name, limit, pids) == (name, "96MiB", "1"), stats.stdout

        renamed = cli("rename", name, f"{name}-2")
        assert renamed.returncode == 1 and "name is its id" in renamed.stderr
    finally:
        cli("rm", "-f", name)
