"""A running container connected to a second overlay through the scheduler (one etcd, one
scheduler, three workers, a client): it reaches a container on another host on that overlay by
name, and is named there by its alias; the connection is in its record (``inspect``), so it
outlives a kill -9 and restart of its worker, and a job's replica rescheduled to another host
joins both overlays there; after a disconnect the name no longer answers, and nothing is left
in any host's kernel or in the cluster's address claims."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bench._multihost import Layout, MultiHostCluster, until
from tests.helpers.multihost import multihost_cluster, network_leftovers, ps

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
PREFIX = f"oc{os.getpid() % 100000}"  # this run's namespaces only
SUBNET = "10.241.141"
LAYOUT = Layout(workers=3, etcd=("etcd1",), schedulers=("sched1",))
LOOP = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1 & wait; done']
PONG = ["sh", "-c", 'trap "exit 0" TERM; while :; do hostname | nc -l -p 7000; done']
MOVER = "mover.1"  # a job's replica: rescheduled when its node is lost


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHostCluster]:
    with multihost_cluster(tmp_path_factory.mktemp("connect"), PREFIX, SUBNET,
                           layout=LAYOUT) as running:
        yield running


@pytest.fixture(scope="module")
def baseline(cluster: MultiHostCluster) -> dict[str, dict[str, int]]:
    """Each worker's networking before any overlay container."""
    return {h: network_leftovers(cluster, h) for h in cluster.layout.worker_hosts}


@pytest.fixture(scope="module")
def before_connect() -> dict[str, dict[str, int]]:
    """worker1's networking with the joiner on cna only, as the first test saw it."""
    return {}


def status(cluster: MultiHostCluster) -> dict[str, dict[str, Any]]:
    return {str(r["name"]): r for r in ps(cluster)}


def running_on(cluster: MultiHostCluster, name: str) -> str:
    """The node ``name`` runs on, "" while it does not run."""
    row = status(cluster).get(name, {})
    return str(row.get("node_id", "")) if row.get("state", {}).get("status") == "running" \
        else ""


def address(cluster: MultiHostCluster, name: str, interface: str) -> str:
    """``name``'s IPv4 address on ``interface`` ("" when it has no such interface)."""
    out = cluster.shoal("exec", name, "ip", "-4", "-o", "addr", "show", interface,
                        check=False).stdout
    return out.split("inet ")[1].split("/")[0] if "inet " in out else ""


def lookup(cluster: MultiHostCluster, asker: str, name: str) -> list[str]:
    """The addresses ``asker``'s resolver gives for ``name`` ([] when it does not know it).
    The name is asked as absolute: busybox's nslookup would otherwise append the domain of
    a replica's hostname (``joiner.1``: ``far.1``), which the host's resolvers answer."""
    text = cluster.shoal("exec", asker, "nslookup", "-type=a", f"{name}.",
                         check=False).stdout
    after_name = text.split("Name:", 1)[1] if "Name:" in text else ""
    return re.findall(r"Address:?\s+(\d+\.\d+\.\d+\.\d+)\s*$", after_name, re.MULTILINE)


def answers(cluster: MultiHostCluster, asker: str, name: str) -> str:
    """What ``name``'s port 7000 says to ``asker`` ("" when it cannot be reached)."""
    return cluster.shoal("exec", asker, "nc", "-w", "3", name, "7000",
                         check=False).stdout.strip()


def joined(cluster: MultiHostCluster, who: str = "joiner", alias: str = "j2") -> str:
    """``who``'s address on the second overlay, once it and ``far`` resolve each other
    there (``far`` by name, ``who`` by its alias) and ``far`` answers it by name."""
    second = address(cluster, who, "eth1")
    assert second.startswith("10.0."), second
    until(cluster, lambda: lookup(cluster, who, "far") == [address(cluster, "far", "eth0")],
          timeout=15)
    until(cluster, lambda: lookup(cluster, "far", alias) == [second], timeout=15)
    assert answers(cluster, who, "far") == "far"
    return second


def inspected(cluster: MultiHostCluster, name: str) -> dict[str, Any]:
    [info] = json.loads(cluster.shoal("inspect", name).stdout)
    assert isinstance(info, dict)
    return info


def claims(cluster: MultiHostCluster, network: str) -> dict[str, str]:
    """Container → address on ``network``, as the scheduler's ``network inspect`` lists it."""
    [info] = json.loads(cluster.shoal("network", "inspect", network).stdout)
    return {e["container_id"]: e.get("ip", "") for e in info["endpoints"]}


def test_a_running_container_joins_a_second_overlay_and_is_named_there(
        cluster: MultiHostCluster, baseline: dict[str, dict[str, int]],
        before_connect: dict[str, dict[str, int]]) -> None:
    for name in ("cna", "cnb"):
        cluster.shoal("network", "create", "--driver", "overlay", "--attachable", name)
    cluster.shoal("run", "-d", "--name", "far", "--network", "cnb",
                  "-c", "node.labels.host==worker2", "busybox", *PONG)
    cluster.shoal("run", "-d", "--name", "joiner", "--network", "cna",
                  "-c", "node.labels.host==worker1", "busybox", *LOOP)
    until(cluster, lambda: bool(running_on(cluster, "far") and running_on(cluster, "joiner")),
          timeout=60)
    assert lookup(cluster, "joiner", "far") == []  # not on cnb yet
    before_connect["worker1"] = network_leftovers(cluster, "worker1")
    cluster.shoal("network", "connect", "--alias", "j2", "cnb", "joiner")
    second = joined(cluster)
    info = inspected(cluster, "joiner")
    assert [a["name"] for a in info["spec"]["connected"]] == ["cnb"]
    assert info["details"]["address.cnb"] == second
    assert claims(cluster, "cnb") == {"far": address(cluster, "far", "eth0"), "joiner": second}
    refused = cluster.shoal("network", "rm", "cnb", check=False)
    assert refused.returncode != 0 and "joiner" in refused.stderr


def test_the_connection_outlives_a_kill_9_and_restart_of_its_worker(
        cluster: MultiHostCluster) -> None:
    second = address(cluster, "joiner", "eth1")
    cluster.kill("worker1")
    cluster.restart("worker1")
    until(cluster, lambda: running_on(cluster, "joiner") == "worker1", timeout=60)
    assert joined(cluster) == second
    assert claims(cluster, "cnb")["joiner"] == second


def test_a_rescheduled_replica_joins_both_overlays_on_its_new_host(
        cluster: MultiHostCluster, baseline: dict[str, dict[str, int]]) -> None:
    """A job's replica connected to cnb, on worker3 (its soft anti-affinity keeps it off the
    joiner's host), moves to worker1 when worker3 is lost: on cna and cnb again there."""
    cluster.shoal("run", "-d", "--replicas", "1", "--name", "mover", "--network", "cna",
                  "--restart", "always", "-c", "node.labels.host!=worker2",
                  "--affinity", "~container!=joiner", "busybox", *LOOP)
    until(cluster, lambda: running_on(cluster, MOVER) == "worker3", timeout=60)
    cluster.shoal("network", "connect", "--alias", "m2", "cnb", MOVER)
    before = joined(cluster, MOVER, "m2")
    cluster.kill("worker3")
    try:
        until(cluster, lambda: running_on(cluster, MOVER) == "worker1", timeout=60)
        assert address(cluster, MOVER, "eth0").startswith("10.0.")  # cna, its own
        after = joined(cluster, MOVER, "m2")
        assert claims(cluster, "cnb")[MOVER] == after
        assert before == after or before not in claims(cluster, "cnb").values()
    finally:
        cluster.restart("worker3")  # its stale copy is stopped, its devices removed
    until(cluster, lambda: network_leftovers(cluster, "worker3") == baseline["worker3"],
          timeout=60)
    cluster.shoal("rm", "-f", MOVER)
    until(cluster, lambda: MOVER not in status(cluster), timeout=60)


def test_after_a_disconnect_the_name_is_gone_and_nothing_is_left(
        cluster: MultiHostCluster, baseline: dict[str, dict[str, int]],
        before_connect: dict[str, dict[str, int]]) -> None:
    second = address(cluster, "joiner", "eth1")
    until(cluster, lambda: network_leftovers(cluster, "worker2")["fdb"] == 1,  # the joiner
          timeout=15)
    refused = cluster.shoal("network", "disconnect", "cna", "joiner", check=False)
    assert refused.returncode != 0 and "stays on it" in refused.stderr
    cluster.shoal("network", "disconnect", "cnb", "joiner")
    assert address(cluster, "joiner", "eth1") == ""
    assert lookup(cluster, "joiner", "far") == []
    assert answers(cluster, "joiner", "far") == ""
    until(cluster, lambda: lookup(cluster, "far", "j2") == [], timeout=15)
    assert "connected" not in inspected(cluster, "joiner")["spec"]
    assert "joiner" not in claims(cluster, "cnb")
    # worker2 forwards nothing to worker1 any more, and worker1 is as before the connect.
    until(cluster, lambda: network_leftovers(cluster, "worker2")["fdb"] == 0, timeout=15)
    until(cluster, lambda: network_leftovers(cluster, "worker1") == before_connect["worker1"],
          timeout=15)
    assert second not in claims(cluster, "cnb").values()
    cluster.shoal("rm", "-f", "far", "joiner")
    until(cluster, lambda: not {"far", "joiner"} & set(status(cluster)), timeout=60)
    cluster.shoal("network", "rm", "cna", "cnb")
    for each in cluster.layout.worker_hosts:
        until(cluster, lambda h=each: network_leftovers(cluster, h)  # type: ignore[misc]
              == baseline[h], timeout=30)
