"""Files through the dev cluster's scheduler: ``docker cp`` both ways and ``docker export``
reach the container's worker (the file verbs are forwarded, their tars streamed through the
relay), ``docker system df`` adds up the nodes, ``docker history`` reads the cluster's store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.dev import DevCluster
from tests.helpers.docker_api import DOCKER_CLI, docker

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    dev = DevCluster(tmp_path_factory.mktemp("dockerfilescluster") / "dev",
                     "tcp://127.0.0.1:0", workers=2, heartbeat=0.2, node_timeout=2.0)
    asyncio.run(dev.start())
    try:
        yield dev
    finally:
        asyncio.run(dev.stop())


@pytest.fixture
def cli(cluster: DevCluster, tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return docker(cluster.docker, tmp_path / "config", *args,  # type: ignore[arg-type]
                      **kwargs)
    return run


def test_cp_export_df_history_through_the_scheduler(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    started = cli("run", "-d", "-e", "constraint:node==worker2", "busybox", "sleep", "600")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        source = tmp_path / "payload.txt"
        source.write_text("through the scheduler\n")
        copied = cli("cp", str(source), f"{cid}:/tmp/payload.txt")
        assert copied.returncode == 0, copied.stderr
        shown = cli("exec", cid, "cat", "/tmp/payload.txt")
        assert shown.stdout == "through the scheduler\n", shown.stderr
        back = cli("cp", f"{cid}:/tmp/payload.txt", str(tmp_path / "back.txt"))
        assert back.returncode == 0, back.stderr
        assert (tmp_path / "back.txt").read_text() == "through the scheduler\n"
        exported = cli("export", "-o", str(tmp_path / "root.tar"), cid)
        assert exported.returncode == 0, exported.stderr
        with tarfile.open(tmp_path / "root.tar") as tar:
            names = set(tar.getnames())
        assert {"bin/sh", "tmp/payload.txt"} <= names
        df = cli("system", "df", "--format", "{{json .}}")
        assert df.returncode == 0, df.stderr
        rows = {row["Type"]: row for row in map(json.loads, df.stdout.splitlines())}
        assert rows["Containers"]["TotalCount"] == "1", rows
        assert rows["Images"]["TotalCount"] == "1", rows
        image_id = cli("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
        history = cli("history", "-q", "--no-trunc", "busybox")
        assert history.returncode == 0, history.stderr
        assert history.stdout.split()[0] == image_id, history.stdout
        missing = cli("cp", f"{cid}:/no/such", str(tmp_path))
        assert missing.returncode != 0 and "No such container:path" in missing.stderr
    finally:
        assert cli("rm", "-f", cid).returncode == 0
