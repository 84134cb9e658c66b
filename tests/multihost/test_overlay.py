"""Overlay networks across network-namespace hosts (one etcd, one scheduler, two workers, a
client): containers on two hosts reach each other over one overlay by IP, TCP and UDP; two
overlays are isolated; an ``--internal`` overlay has no way out; ``network rm`` is refused while
used; a worker's kill -9 and restart, and a node's loss, leave no veth, VXLAN device, bridge,
forwarding or neighbour entry, or nft rule behind (counted in the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bench._multihost import Layout, MultiHostCluster, census, until
from tests.helpers.multihost import multihost_cluster, network_leftovers, ps

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]
PREFIX = f"ov{os.getpid() % 100000}"  # this run's namespaces only
SUBNET = "10.241.97"
LAYOUT = Layout(workers=2, etcd=("etcd1",), schedulers=("sched1",))
LOOP = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1 & wait; done']
PONG = ["sh", "-c", 'trap "exit 0" TERM; while :; do echo pong | nc -l -p 7000; done']
UDP_ECHO = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('0.0.0.0', 7001)); print('ready', flush=True); "
            "d, a = s.recvfrom(100); s.sendto(d.upper(), a)")
UDP_ASK = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "s.settimeout(5); s.sendto(b'ping', (sys.argv[1], 7001)); print(s.recv(100))")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHostCluster]:
    with multihost_cluster(tmp_path_factory.mktemp("overlay"), PREFIX, SUBNET,
                           layout=LAYOUT) as running:
        yield running


@pytest.fixture(scope="module")
def baseline(cluster: MultiHostCluster) -> dict[str, dict[str, int]]:
    """Each worker's networking before any overlay container."""
    return {h: network_leftovers(cluster, h) for h in cluster.layout.worker_hosts}


def status(cluster: MultiHostCluster) -> dict[str, dict[str, Any]]:
    return {str(r["name"]): r for r in ps(cluster)}


def run_on(cluster: MultiHostCluster, name: str, network: str, host: str,
           command: list[str], *extra: str) -> None:
    cluster.shoal("run", "-d", "--name", name, "--network", network,
                  "-c", f"node.labels.host=={host}", *extra, "busybox", *command)


def wait_running(cluster: MultiHostCluster, *names: str) -> None:
    until(cluster, lambda: all(status(cluster).get(n, {}).get("state", {}).get("status")
                               == "running" for n in names), timeout=60)


def ip_of(cluster: MultiHostCluster, name: str) -> str:
    out = cluster.shoal("exec", name, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    return out.split("inet ")[1].split("/")[0]


def reaches(cluster: MultiHostCluster, name: str, ip: str) -> bool:
    return cluster.shoal("exec", name, "ping", "-c", "1", "-W", "2", ip,
                         check=False).returncode == 0


def netns_of(cluster: MultiHostCluster, name: str) -> str:
    cid = str(status(cluster)[name]["id"])
    (pids,) = census(cluster)[cid].values()
    return f"/proc/{pids[0]}/ns/net"


def gone(cluster: MultiHostCluster, *names: str) -> None:
    cluster.shoal("rm", "-f", *names)
    until(cluster, lambda: not set(names) & set(status(cluster)), timeout=60)


def test_two_hosts_reach_each_other_over_an_overlay_by_tcp_and_udp(
        cluster: MultiHostCluster, baseline: dict[str, dict[str, int]]) -> None:
    for name, extra in (("ova", []), ("ovb", []), ("ovi", ["--internal"])):
        cluster.shoal("network", "create", "--driver", "overlay", "--attachable", *extra, name)
    refused = cluster.shoal("run", "-d", "--network", "ova", "--name", "x", "busybox",
                            "true", check=False)
    assert refused.returncode == 0  # attachable: a standalone container joins
    gone(cluster, "x")
    run_on(cluster, "srv", "ova", "worker1", PONG)
    run_on(cluster, "cli", "ova", "worker2", LOOP)
    wait_running(cluster, "srv", "cli")
    srv = ip_of(cluster, "srv")
    assert ip_of(cluster, "cli") != srv
    mtu = cluster.shoal("exec", "cli", "cat", "/sys/class/net/eth0/mtu").stdout.strip()
    assert mtu == "1450"
    assert reaches(cluster, "cli", srv)
    said = cluster.shoal("exec", "cli", "nc", "-w", "5", srv, "7000").stdout
    assert "pong" in said
    # UDP both ways between the two containers' namespaces.
    server = subprocess.Popen(["nsenter", f"--net={netns_of(cluster, 'srv')}", sys.executable,
                               "-c", UDP_ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        asked = subprocess.run(["nsenter", f"--net={netns_of(cluster, 'cli')}",
                                sys.executable, "-c", UDP_ASK, srv], capture_output=True,
                               text=True, timeout=20)
        assert "PING" in asked.stdout, asked.stderr
    finally:
        server.kill()
        server.wait(10)


def test_two_overlays_are_isolated_and_an_internal_one_has_no_way_out(
        cluster: MultiHostCluster) -> None:
    wait_running(cluster, "srv", "cli")
    srv = ip_of(cluster, "srv")
    run_on(cluster, "other", "ovb", "worker2", LOOP)
    run_on(cluster, "in1", "ovi", "worker1", LOOP)
    run_on(cluster, "in2", "ovi", "worker2", LOOP)
    wait_running(cluster, "other", "in1", "in2")
    assert not reaches(cluster, "other", srv)
    outside = cluster.topology.ips["client"]
    assert reaches(cluster, "cli", outside)  # a non-internal overlay has a way out
    assert not reaches(cluster, "in1", outside)
    assert reaches(cluster, "in2", ip_of(cluster, "in1"))  # but its containers meet
    refused = cluster.shoal("network", "rm", "ova", check=False)
    assert refused.returncode != 0 and "in use" in refused.stderr
    gone(cluster, "other", "in1", "in2")


def test_kill_9_and_restart_of_a_worker_then_removal_leave_nothing(
        cluster: MultiHostCluster, baseline: dict[str, dict[str, int]]) -> None:
    wait_running(cluster, "srv", "cli")
    during = network_leftovers(cluster, "worker1")
    assert during["vxlan"] == baseline["worker1"]["vxlan"] + 1
    assert during["fdb"] == 1 and during["neigh"] == 1  # cli, on worker2
    cluster.kill("worker1")
    cluster.restart("worker1")
    until(cluster, lambda: network_leftovers(cluster, "worker1") == during, timeout=30)
    srv = ip_of(cluster, "srv")
    assert "pong" in cluster.shoal("exec", "cli", "nc", "-w", "5", srv, "7000").stdout
    # Removed while its worker is down: gone from the host once it is back.
    cluster.kill("worker1")
    cluster.shoal("rm", "-f", "srv")
    cluster.restart("worker1")
    until(cluster, lambda: "srv" not in status(cluster), timeout=60)
    until(cluster, lambda: network_leftovers(cluster, "worker1") == baseline["worker1"],
          timeout=30)
    until(cluster, lambda: network_leftovers(cluster, "worker2")["fdb"] == 0, timeout=30)
    gone(cluster, "cli")
    for host in cluster.layout.worker_hosts:
        until(cluster, lambda h=host: network_leftovers(cluster, h)  # type: ignore[misc]
              == baseline[h], timeout=30)


def test_a_lost_node_leaves_nothing_behind(cluster: MultiHostCluster,
                                           baseline: dict[str, dict[str, int]]) -> None:
    cluster.shoal("run", "-d", "--replicas", "2", "--name", "job", "--network", "ova",
                  "--restart", "always", "busybox", *LOOP)
    until(cluster, lambda: sorted(r["node_id"] for r in ps(cluster)
                                  if str(r["name"]).startswith("job")
                                  and r["state"].get("status") == "running")
          == ["worker1", "worker2"], timeout=60)
    assert network_leftovers(cluster, "worker2")["fdb"] == 1
    cluster.kill("worker1")
    until(cluster, lambda: [r["node_id"] for r in ps(cluster)
                            if str(r["name"]).startswith("job")
                            and r["state"].get("status") == "running"]
          == ["worker2", "worker2"], timeout=60)
    # Both replicas on worker2 now: no remote peer left to forward to.
    until(cluster, lambda: network_leftovers(cluster, "worker2")["fdb"] == 0, timeout=30)
    assert network_leftovers(cluster, "worker2")["neigh"] == 0
    cluster.restart("worker1")  # its stale copy is stopped, its devices removed
    until(cluster, lambda: network_leftovers(cluster, "worker1") == baseline["worker1"],
          timeout=60)
    gone(cluster, *[str(r["name"]) for r in ps(cluster) if str(r["name"]).startswith("job")])
    for host in cluster.layout.worker_hosts:
        until(cluster, lambda h=host: network_leftovers(cluster, h)  # type: ignore[misc]
              == baseline[h], timeout=30)
    cluster.shoal("network", "rm", "ova", "ovb", "ovi")
