"""A Compose app across network-namespace hosts (one etcd, one scheduler, two workers, a
client): web → api → cache, placed on two workers, each started once its dependency is healthy
(``depends_on: service_healthy``), reaching the next by its service name across hosts on the
project's overlay; web's published port answers the client host; exec, a one-off run and
port through the scheduler; ``down -v`` leaves no
container, network, volume, or kernel leftover (veths, VXLAN, bridges, fdb, neighbours, nft)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._multihost import Layout, MultiHostCluster
from tests.helpers.multihost import multihost_cluster, network_leftovers, ps

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
PREFIX = f"cm{os.getpid() % 100000}"  # this run's namespaces only
SUBNET = "10.241.163"
LAYOUT = Layout(workers=2, etcd=("etcd1",), schedulers=("sched1",))

APP = """\
services:
  web:
    image: busybox
    # Its page is what api answered at start: api resolved by name on another host.
    command: [sh, -c, 'mkdir /www && wget -qO /www/index.html http://api:8001/ &&
                       exec httpd -f -p 8000 -h /www']
    ports: ["8080:8000"]
    depends_on: {api: {condition: service_healthy}}
    deploy: {placement: {constraints: [node.labels.host == worker1]}}
    stop_grace_period: 1s
  api:
    image: busybox
    command: [sh, -c, 'mkdir /www && nc cache 7000 > /www/index.html &&
                       exec httpd -f -p 8001 -h /www']
    healthcheck: {test: [CMD, wget, -qO-, http://localhost:8001/], interval: 200ms,
                  retries: 100}
    depends_on: {cache: {condition: service_healthy}}
    deploy: {placement: {constraints: [node.labels.host == worker2]}}
    stop_grace_period: 1s
  cache:
    image: busybox
    command: [sh, -c, 'echo from-cache > /data/value;
                       while :; do nc -l -p 7000 < /data/value; done']
    healthcheck: {test: [CMD-SHELL, 'netstat -ltn | grep -q :7000'], interval: 200ms,
                  retries: 100}
    volumes: [data:/data]
    deploy: {placement: {constraints: [node.labels.host == worker1]}}
    stop_grace_period: 1s
volumes:
  data: {}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHostCluster]:
    with multihost_cluster(tmp_path_factory.mktemp("compose"), PREFIX, SUBNET,
                           layout=LAYOUT) as running:
        yield running


def test_a_three_service_app_across_two_hosts(cluster: MultiHostCluster,
                                               tmp_path: Path) -> None:
    baseline = {h: network_leftovers(cluster, h) for h in cluster.layout.worker_hosts}
    (tmp_path / "compose.yaml").write_text(APP)
    project = f"mh{os.urandom(2).hex()}"

    def compose(*args: str, check: bool = True) -> str:
        return cluster.shoal("compose", "-f", str(tmp_path / "compose.yaml"), "-p", project,
                             *args, check=check, timeout=180).stdout

    up = compose("up", "-d")
    steps = re.findall(r"^Container \S+-(\w+)-1  (\w+)$", up, re.MULTILINE)
    # All created at once (placed all or nothing), then each started in depends_on order.
    assert steps == [("cache", "Created"), ("api", "Created"), ("web", "Created"),
                     ("cache", "Started"), ("cache", "Waiting"), ("cache", "Healthy"),
                     ("api", "Started"), ("api", "Waiting"), ("api", "Healthy"),
                     ("web", "Started")], up
    assert f"Network {project}_default  Created" in up
    network = json.loads(cluster.shoal("network", "inspect", f"{project}_default").stdout)
    assert (network[0]["spec"]["driver"], network[0]["spec"]["attachable"]) == \
        ("overlay", True)
    nodes = {r["name"]: r["node_id"] for r in ps(cluster)}
    assert nodes[f"{project}-api-1"] != nodes[f"{project}-web-1"] == \
        nodes[f"{project}-cache-1"]

    # web (worker1) got its page from api (worker2), which got it from cache (worker1).
    worker1 = cluster.topology.ips["worker1"]
    got = cluster.topology.on(cluster.layout.client, [
        "sh", "-c", "for i in $(seq 50); do busybox wget -qO- "
        f"http://{worker1}:8080/ && exit 0; sleep 0.2; done; exit 1"])
    import subprocess

    answer = subprocess.run(got, capture_output=True, text=True, timeout=60,
                            env=cluster.topology.env)
    assert (answer.returncode, answer.stdout.strip()) == (0, "from-cache"), answer.stderr

    # The service verbs through the scheduler: exec on web's worker, a one-off on the
    # overlay, a published port.
    assert compose("exec", "-T", "web", "wget", "-qO-", "http://api:8001/") == "from-cache\n"
    assert compose("run", "--rm", "-T", "--no-deps", "api", "nc", "cache", "7000") == \
        "from-cache\n"
    assert compose("port", "web", "8000").strip().endswith(":8080")

    again = compose("up", "-d")
    assert {a for a in re.findall(r"  (\w+)$", again, re.MULTILINE)} <= \
        {"Running", "Waiting", "Healthy"}, again

    down = compose("down", "-v")
    assert f"Volume {project}_data  Removed" in down, down
    assert [r for r in ps(cluster) if r["name"].startswith(project)] == []
    assert f"{project}_default" not in cluster.shoal("network", "ls").stdout
    assert f"{project}_data" not in cluster.shoal("volume", "ls").stdout
    assert {h: network_leftovers(cluster, h) for h in cluster.layout.worker_hosts} == baseline
