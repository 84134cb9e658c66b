"""Names across hosts over an overlay (one etcd, one scheduler, three workers, a client): a
container on one host resolves containers on another by name, by ``--network-alias`` and by
job name (every running replica, rotated) through its resolver at 127.0.0.11, and reaches them
by that name over TCP and UDP, and a container on its node's own network by name at its node;
an exited container's name is gone; a replica rescheduled by a partition resolves to its new
address within a heartbeat; two overlays never see each other's names. Beside them, the
default network, published ports and connect/disconnect through the scheduler."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench._multihost import Layout, MultiHostCluster, census, until
from tests.helpers.multihost import multihost_cluster, ps

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
PREFIX = f"on{os.getpid() % 100000}"  # this run's namespaces only
SUBNET = "10.241.113"
LAYOUT = Layout(workers=3, etcd=("etcd1",), schedulers=("sched1",))
LOOP = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1 & wait; done']
UNTIL_TOLD = ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done"]
PONG = ["sh", "-c", 'trap "exit 0" TERM; while :; do hostname | nc -l -p 7000; done']
UDP_ECHO = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('0.0.0.0', 7001)); print('ready', flush=True); "
            "d, a = s.recvfrom(100); s.sendto(d.upper(), a)")
# Inside the asker's namespace: the name resolved by its embedded resolver, then a datagram.
UDP_ASK_BY_NAME = (
    "import socket, sys, dns.resolver; r = dns.resolver.Resolver(configure=False); "
    "r.nameservers = ['127.0.0.11']; ip = r.resolve(sys.argv[1], 'A')[0].address; "
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); "
    "s.sendto(b'ping', (ip, 7001)); print(ip, s.recv(100))")

# Prints when (CLOCK_MONOTONIC, shared with the test) and what a name first resolves to other
# than argv[2]; gives up after a minute.
WATCH_NAME = (
    "import sys, time, dns.resolver; r = dns.resolver.Resolver(configure=False); "
    "r.nameservers = ['127.0.0.11']; r.lifetime = 1; end = time.monotonic() + 60\n"
    "while time.monotonic() < end:\n"
    "    try: got = [a.address for a in r.resolve(sys.argv[1], 'A')]\n"
    "    except Exception: got = []\n"
    "    if got and got != [sys.argv[2]]: print(time.monotonic(), got[0]); break\n"
    "    time.sleep(0.02)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHostCluster]:
    with multihost_cluster(tmp_path_factory.mktemp("names"), PREFIX, SUBNET,
                           layout=LAYOUT) as running:
        yield running


def status(cluster: MultiHostCluster) -> dict[str, dict[str, Any]]:
    return {str(r["name"]): r for r in ps(cluster)}


def running_rows(cluster: MultiHostCluster, prefix: str) -> list[dict[str, Any]]:
    return [r for r in ps(cluster) if str(r["name"]).startswith(prefix)
            and r["state"].get("status") == "running"]


def run_on(cluster: MultiHostCluster, name: str, network: str, where: str,
           command: list[str], *extra: str) -> None:
    cluster.shoal("run", "-d", "--name", name, "--network", network, "-c", where, *extra,
                  "busybox", *command)


def wait_running(cluster: MultiHostCluster, *names: str) -> None:
    until(cluster, lambda: all(status(cluster).get(n, {}).get("state", {}).get("status")
                               == "running" for n in names), timeout=60)


def ip_of(cluster: MultiHostCluster, name: str) -> str:
    out = cluster.shoal("exec", name, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    return out.split("inet ")[1].split("/")[0]


def lookup(cluster: MultiHostCluster, asker: str, name: str) -> list[str]:
    """The addresses ``asker``'s resolver gives for ``name`` ([] when it does not know it)."""
    text = cluster.shoal("exec", asker, "nslookup", "-type=a", name, check=False).stdout
    after_name = text.split("Name:", 1)[1] if "Name:" in text else ""
    return re.findall(r"Address:?\s+(\d+\.\d+\.\d+\.\d+)\s*$", after_name, re.MULTILINE)


def netns_of(cluster: MultiHostCluster, name: str) -> str:
    cid = str(status(cluster)[name]["id"])
    (pids,) = census(cluster)[cid].values()
    return f"/proc/{pids[0]}/ns/net"


def test_names_aliases_and_jobs_resolve_and_answer_across_hosts(
        cluster: MultiHostCluster) -> None:
    for name in ("nna", "nnb"):
        cluster.shoal("network", "create", "--driver", "overlay", "--attachable", name)
    run_on(cluster, "web", "nna", "node.labels.host==worker1", PONG, "--network-alias", "www")
    run_on(cluster, "cli", "nna", "node.labels.host==worker3", LOOP)
    run_on(cluster, "stranger", "nnb", "node.labels.host==worker3", LOOP)
    cluster.shoal("run", "-d", "--replicas", "2", "--name", "api", "--network", "nna",
                  "-c", "node.labels.host!=worker3", "busybox", *PONG)
    wait_running(cluster, "web", "cli", "stranger", "api.1", "api.2")
    web = ip_of(cluster, "web")
    api = sorted(ip_of(cluster, f"api.{i}") for i in (1, 2))
    # The scheduler's inspect: each container on the overlay, its address and its node.
    [info] = json.loads(cluster.shoal("network", "inspect", "nna").stdout)
    rows = status(cluster)
    assert {(e["container_id"], e["ip"], e["node_id"]) for e in info["endpoints"]} == {
        (n, ip_of(cluster, n), rows[n]["node_id"]) for n in ("web", "cli", "api.1", "api.2")}
    assert lookup(cluster, "cli", "web") == [web]
    assert lookup(cluster, "cli", "www") == [web]
    assert lookup(cluster, "cli", "api.1") == [ip_of(cluster, "api.1")]
    # The job's name: every replica, the first one rotating between questions.
    answers = [lookup(cluster, "cli", "api") for _ in range(2)]
    assert all(sorted(a) == api for a in answers), answers
    assert answers[0][0] != answers[1][0]
    # Reached by name: TCP from busybox, UDP from the namespace through its resolver.
    assert cluster.shoal("exec", "cli", "nc", "-w", "5", "www", "7000").stdout.strip() == "web"
    assert cluster.shoal("exec", "cli", "nc", "-w", "5", "api", "7000").stdout.strip() \
        .startswith("api.")
    server = subprocess.Popen(["nsenter", f"--net={netns_of(cluster, 'web')}", sys.executable,
                               "-c", UDP_ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        asked = subprocess.run(["nsenter", f"--net={netns_of(cluster, 'cli')}",
                                sys.executable, "-c", UDP_ASK_BY_NAME, "web"],
                               capture_output=True, text=True, timeout=30)
        assert f"{web} b'PING'" in asked.stdout, asked.stderr
    finally:
        server.kill()
        server.wait(10)
    # A container on its node's own network (as every one on a Windows worker is): its name
    # answers on the overlays with its node's address, where it is reached.
    cluster.shoal("run", "-d", "--name", "onhost", "--network", "host",
                  "-c", "node.labels.host==worker1", "busybox", *PONG)
    wait_running(cluster, "onhost")
    node_ip = cluster.topology.ips["worker1"]
    until(cluster, lambda: lookup(cluster, "cli", "onhost") == [node_ip], timeout=10)
    assert cluster.shoal("exec", "cli", "nc", "-w", "5", "onhost", "7000").stdout.strip()
    cluster.shoal("rm", "-f", "onhost")
    # Another overlay's names are not this one's, either way.
    assert lookup(cluster, "stranger", "web") == []
    assert lookup(cluster, "stranger", "api") == []
    assert lookup(cluster, "cli", "stranger") == []


def test_an_exited_container_is_no_longer_named(cluster: MultiHostCluster) -> None:
    wait_running(cluster, "cli")
    # It ends on its own (no restart policy): exited, still on its node.
    run_on(cluster, "brief", "nna", "node.labels.host==worker1", UNTIL_TOLD)
    wait_running(cluster, "brief")
    until(cluster, lambda: lookup(cluster, "cli", "brief") == [ip_of(cluster, "brief")],
          timeout=10)
    cluster.shoal("exec", "brief", "touch", "/tmp/go")
    until(cluster, lambda: status(cluster)["brief"]["state"].get("status") != "running",
          timeout=30)
    until(cluster, lambda: lookup(cluster, "cli", "brief") == [], timeout=10)
    cluster.shoal("rm", "-f", "brief")


def test_the_default_network_and_published_ports_through_the_scheduler(
        cluster: MultiHostCluster) -> None:
    """Without --network: the node's bridge; ``-p 7000`` bound to a port the node chose,
    which the scheduler's ``ps`` and ``port`` show and the client reaches at the node."""
    cluster.shoal("run", "-d", "--name", "pub", "-c", "node.labels.host==worker2", "-p", "7000",
                  "busybox", *PONG)
    wait_running(cluster, "pub")
    assert ip_of(cluster, "pub")  # an address on the node's bridge
    until(cluster, lambda: status(cluster)["pub"]["ports"][0]["host_port"] != 0, timeout=10)
    [port] = status(cluster)["pub"]["ports"]
    assert (port["container_port"], port.get("protocol", "tcp")) == (7000, "tcp")
    shown = cluster.shoal("port", "pub", "7000").stdout.strip()
    assert shown == f"0.0.0.0:{port['host_port']}"
    said = cluster.topology.script("exec", "client", "busybox", "nc", "-w", "5",
                                   cluster.topology.ips["worker2"], str(port["host_port"]),
                                   check=False)
    assert said.stdout.strip() == "pub", said.stderr
    # connect/disconnect through the scheduler: to the container's node, the cluster's bridge
    # network made there with it; an overlay made without --attachable is refused to a
    # standalone container, naming why.
    cluster.shoal("network", "create", "nbr")
    cluster.shoal("network", "connect", "nbr", "pub")
    eth1 = cluster.shoal("exec", "pub", "ip", "-4", "-o", "addr", "show", "eth1").stdout
    assert "inet " in eth1
    cluster.shoal("network", "create", "--driver", "overlay", "nnx")
    refused = cluster.shoal("network", "connect", "nnx", "pub", check=False)
    assert refused.returncode != 0 and "not attachable" in refused.stderr
    cluster.shoal("network", "rm", "nnx")
    cluster.shoal("network", "disconnect", "nbr", "pub")
    assert cluster.shoal("exec", "pub", "ip", "link", "show", "eth1", check=False).returncode
    cluster.shoal("network", "rm", "nbr")
    cluster.shoal("rm", "-f", "pub")


def test_a_replica_moved_by_a_partition_resolves_to_its_new_address(
        cluster: MultiHostCluster) -> None:
    cluster.shoal("run", "-d", "--name", "mov", "--network", "nna", "--restart", "always",
                  "-c", "node.labels.host!=worker3", "busybox", *PONG)
    wait_running(cluster, "mov", "cli")
    before = ip_of(cluster, "mov")
    node = str(status(cluster)["mov"]["node_id"])
    until(cluster, lambda: lookup(cluster, "cli", "mov") == [before], timeout=10)
    # Asks cli's resolver every 20 ms from inside its namespace, from before the partition.
    watcher = subprocess.Popen(["nsenter", f"--net={netns_of(cluster, 'cli')}", sys.executable,
                                "-c", WATCH_NAME, "mov", before], stdout=subprocess.PIPE,
                               text=True)
    cluster.topology.partition(node)
    try:
        until(cluster, lambda: status(cluster)["mov"]["node_id"] != node and
              status(cluster)["mov"]["state"].get("status") == "running", timeout=60)
        moved = time.monotonic()  # the scheduler's ps shows it running elsewhere
        after = ip_of(cluster, "mov")
        assert after != before
        out, _ = watcher.communicate(timeout=30)
        answered_at, answer = out.split()
        assert answer == after
        took = float(answered_at) - moved
        print(f"the new address resolved {took:+.2f} s after ps showed the move")
        assert took <= cluster.timing.heartbeat
        said = cluster.shoal("exec", "cli", "nc", "-w", "5", "mov", "7000").stdout.strip()
        assert said == "mov"
    finally:
        watcher.kill()
        watcher.wait(10)
        cluster.topology.heal(node)
    cluster.shoal("rm", "-f", "mov", "web", "cli", "stranger", "api.1", "api.2")
    until(cluster, lambda: not status(cluster), timeout=60)
    cluster.shoal("network", "create", "--driver", "overlay", "spare")
    assert cluster.shoal("network", "prune").stdout.split() == ["nna", "nnb", "spare"]
    assert [n["spec"]["name"] for n in json.loads(cluster.shoal(
        "network", "ls", "--format", "json").stdout)] == ["bridge"]
