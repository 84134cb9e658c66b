"""Debian's docker-compose 1.29 (a Python client of Docker's API) against a worker's Docker API
and against the dev cluster's: ``up -d``, ``ps``, ``logs`` and ``down`` of a two-service app
with its own network, a published port and a healthcheck (and, on the worker, a named
volume)."""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.dev import DevCluster
from tests.helpers.docker_api import DOCKER_CLI, docker, docker_worker
from tests.helpers.worker_process import Worker

pytestmark = pytest.mark.root
COMPOSE = Path("/usr/bin/docker-compose")
APP = """\
    version: "3.8"
    services:
      db:
        image: busybox
        command: ["sh", "-c", "echo db-ready > /data/state; echo db up; exec sleep 600"]
        volumes: ["data:/data"]
        healthcheck:
          test: ["CMD", "test", "-f", "/data/state"]
          interval: 1s
      web:
        image: busybox
        command: ["sh", "-c", "nslookup db >/dev/null && echo web found db; exec sleep 600"]
        depends_on: [db]
        ports: ["80"]
        labels:
          tier: front
    volumes:
      data: {}
    """


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    assert COMPOSE.exists(), "Debian's docker-compose is missing: run deploy/setup.sh"
    assert DOCKER_CLI.exists(), "Debian's docker.io is missing: run deploy/setup.sh"
    with docker_worker(tmp_path_factory.mktemp("compose") / "worker") as worker:
        yield worker


def compose(host: str, project: Path, name: str, *args: str,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMPOSE), "-p", name, *args], cwd=project, capture_output=True,
                          text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": host,
                               "HOME": str(project), "COMPOSE_INTERACTIVE_NO_CLI": "1"})


def test_up_ps_logs_down(node: Worker, tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(APP))
    name = f"da2c{secrets.token_hex(3)}"
    up = compose(node.docker, tmp_path, name, "up", "-d")
    try:
        assert up.returncode == 0, up.stderr
        ps = compose(node.docker, tmp_path, name, "ps")
        assert ps.returncode == 0, ps.stderr
        rows = ps.stdout.splitlines()[2:]
        assert len(rows) == 2 and all(" Up " in row for row in rows), ps.stdout
        # Compose disconnects and connects each container to its network before the start
        # (to set its aliases): its published port survives that.
        assert any(row.startswith(f"{name}_web_1") and re.search(r":\d+->80/tcp", row)
                   for row in rows), ps.stdout
        logs = compose(node.docker, tmp_path, name, "logs", "--no-color")
        assert logs.returncode == 0, logs.stderr
        assert "db up" in logs.stdout
        listed = docker(node.docker, tmp_path, "network", "ls", "--format", "{{.Name}}")
        assert f"{name}_default" in listed.stdout.split()
        volumes = docker(node.docker, tmp_path, "volume", "ls", "-q")
        assert f"{name}_data" in volumes.stdout.split()
    finally:
        down = compose(node.docker, tmp_path, name, "down", "-v")
    assert down.returncode == 0, down.stderr
    assert docker(node.docker, tmp_path, "ps", "-aq").stdout.split() == []
    assert f"{name}_default" not in docker(node.docker, tmp_path, "network", "ls").stdout
    assert f"{name}_data" not in docker(node.docker, tmp_path, "volume", "ls", "-q").stdout


CLUSTER_APP = """\
    version: "3.8"
    services:
      db:
        image: busybox
        command: ["sh", "-c", "echo db up; exec sleep 600"]
        healthcheck:
          test: ["CMD", "true"]
          interval: 1s
      web:
        image: busybox
        command: ["sh", "-c", "echo web up; exec sleep 600"]
        depends_on: [db]
        ports: ["80"]
    """


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    assert COMPOSE.exists(), "Debian's docker-compose is missing: run deploy/setup.sh"
    dev = DevCluster(tmp_path_factory.mktemp("composecluster") / "dev", "tcp://127.0.0.1:0",
                     workers=2, heartbeat=0.2, node_timeout=2.0)
    asyncio.run(dev.start())
    try:
        yield dev
    finally:
        asyncio.run(dev.stop())


def test_up_ps_logs_down_on_the_dev_cluster(cluster: DevCluster, tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(CLUSTER_APP))
    name = f"da2k{secrets.token_hex(3)}"
    up = compose(cluster.docker, tmp_path, name, "up", "-d")
    try:
        assert up.returncode == 0, up.stderr
        ps = compose(cluster.docker, tmp_path, name, "ps")
        assert ps.returncode == 0, ps.stderr
        rows = ps.stdout.splitlines()[2:]
        assert len(rows) == 2 and all(" Up " in row for row in rows), ps.stdout
        logs = compose(cluster.docker, tmp_path, name, "logs", "--no-color")
        assert logs.returncode == 0, logs.stderr
        assert "db up" in logs.stdout and "web up" in logs.stdout, logs.stdout
    finally:
        down = compose(cluster.docker, tmp_path, name, "down")
    assert down.returncode == 0, down.stderr
    assert docker(cluster.docker, tmp_path, "ps", "-aq").stdout.split() == []


SIDECAR = """\
    version: "3.8"
    services:
      web:
        image: busybox
        command: ["httpd", "-f", "-p", "127.0.0.1:8000", "-h", "/etc"]
      side:
        image: busybox
        network_mode: service:web
        command: ["sh", "-c", "until wget -qO- http://127.0.0.1:8000/hostname; do sleep 0.1;
                               done; exec sleep 600"]
    """


def test_a_sidecar_on_network_mode_service(node: Worker, tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(SIDECAR))
    name = f"dsc{secrets.token_hex(3)}"
    up = compose(node.docker, tmp_path, name, "up", "-d")
    try:
        assert up.returncode == 0, up.stderr
        mode = docker(node.docker, tmp_path, "inspect", "-f", "{{.HostConfig.NetworkMode}}",
                      f"{name}_side_1").stdout.strip()
        web = docker(node.docker, tmp_path, "inspect", "-f", "{{.Id}}", f"{name}_web_1")
        assert mode == f"container:{web.stdout.strip()}"  # compose 1.29 names the id
        hostname = docker(node.docker, tmp_path, "exec", f"{name}_web_1", "hostname")
        served = docker(node.docker, tmp_path, "exec", f"{name}_side_1", "wget", "-qO-",
                        "http://127.0.0.1:8000/hostname")
        assert served.stdout == hostname.stdout and served.stdout.strip(), served.stderr
    finally:
        down = compose(node.docker, tmp_path, name, "down")
        assert down.returncode == 0, down.stderr
