"""``--network container:NAME`` across network-namespace hosts (one etcd, one scheduler, three
workers, a client): every replica of a job that joins NAME's network lands on NAME's node and
reaches what NAME serves on 127.0.0.1; a peer that runs nowhere is refused with the reason;
a Compose sidecar on ``network_mode: service:X`` is placed beside X."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._multihost import Layout, MultiHostCluster, until
from tests.helpers.multihost import multihost_cluster, ps

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
PREFIX = f"np{os.getpid() % 100000}"  # this run's namespaces only
SUBNET = f"10.243.{os.getpid() % 200 + 20}"
LAYOUT = Layout(workers=3, etcd=("etcd1",), schedulers=("sched1",))
SERVE = ["httpd", "-f", "-p", "127.0.0.1:8000", "-h", "/etc"]  # loopback only
ASK = "until wget -qO- http://127.0.0.1:8000/hostname; do sleep 0.1; done; exec sleep 600"

APP = """\
services:
  web:
    image: busybox
    command: [httpd, -f, -p, "127.0.0.1:8000", -h, /etc]
    deploy: {placement: {constraints: [node.labels.host == worker2]}}
  side:
    image: busybox
    network_mode: service:web
    command: [sleep, "600"]
    deploy: {replicas: 2}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHostCluster]:
    with multihost_cluster(tmp_path_factory.mktemp("peer"), PREFIX, SUBNET,
                           layout=LAYOUT) as running:
        yield running


def nodes(cluster: MultiHostCluster) -> dict[str, str]:
    return {str(r["name"]): str(r["node_id"]) for r in ps(cluster)
            if r["state"].get("status") == "running"}


def test_a_joined_job_lands_on_its_peers_node(cluster: MultiHostCluster) -> None:
    cluster.shoal("run", "-d", "--name", "pweb", "busybox", *SERVE)
    until(cluster, lambda: "pweb" in nodes(cluster), timeout=60)
    cluster.shoal("run", "-d", "--replicas", "4", "--name", "side", "--network",
                  "container:pweb", "busybox", "sh", "-c", ASK)
    until(cluster, lambda: sum(n.startswith("side.") for n in nodes(cluster)) == 4,
          timeout=60)
    placed = nodes(cluster)
    assert {placed[f"side.{i}"] for i in range(1, 5)} == {placed["pweb"]}
    hostname = cluster.shoal("exec", "pweb", "hostname").stdout.strip()
    assert cluster.shoal("exec", "side.3", "wget", "-qO-",
                         "http://127.0.0.1:8000/hostname").stdout.strip() == hostname
    nowhere = cluster.shoal("run", "-d", "--name", "lost", "--network", "container:nothere",
                            "busybox", "true", check=False)
    assert nowhere.returncode != 0
    assert "container nothere, whose network it joins, is not running anywhere" in \
        nowhere.stderr, nowhere.stderr
    cluster.shoal("rm", "-f", *(f"side.{i}" for i in range(1, 5)), "pweb")


def test_a_compose_sidecar_is_placed_beside_its_service(cluster: MultiHostCluster,
                                                        tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(APP)
    project = f"np{os.urandom(2).hex()}"

    def compose(*args: str) -> str:
        return cluster.shoal("compose", "-f", str(tmp_path / "compose.yaml"), "-p", project,
                             *args, timeout=180).stdout

    up = compose("up", "-d")
    started = re.findall(rf"^Container {project}-(\S+)  Started$", up, re.MULTILINE)
    assert started == ["web-1", "side-1", "side-2"], up
    until(cluster, lambda: sum(n.startswith(project) for n in nodes(cluster)) == 3,
          timeout=60)
    placed = nodes(cluster)
    worker2 = placed[f"{project}-web-1"]
    assert placed[f"{project}-side-1"] == placed[f"{project}-side-2"] == worker2
    assert compose("exec", "-T", "--index", "2", "side", "wget", "-qO-",
                   "http://127.0.0.1:8000/hostname").strip() == \
        compose("exec", "-T", "web", "hostname").strip()
    compose("down")
    assert [r for r in ps(cluster) if str(r["name"]).startswith(project)] == []
