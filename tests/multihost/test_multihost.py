"""A cluster across network-namespace hosts (``deploy/netns-cluster.sh``): three etcd members,
two schedulers, four workers and a client host running the ``shoal`` CLI, all real processes.
Spread, logs and exec across hosts, one etcd member killed, a worker partitioned and healed
(every container's processes followed on every host), and the leader killed."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._multihost import MultiHostCluster, census, doubled, until
from tests.helpers.multihost import (
    assert_exclusive_never_doubled,
    assert_none_lost,
    multihost_cluster,
    ps,
    wait_pids_gone,
)
from tests.helpers.process_logs import wait_for_log

# The first test also starts the whole topology (ten hosts' daemons, tokens, the image).
pytestmark = [pytest.mark.root, pytest.mark.timeout(150)]
PREFIX = f"mh{os.getpid() % 100000}"  # this run's namespaces only
SUBNET = "10.241.61"
COMMAND = ["sh", "-c", 'trap "exit 0" TERM; echo hello from $(hostname); '
           "while :; do sleep 1 & wait; done"]
# How long after healing a stale copy may still run: one heartbeat, plus the worker's
# reconnection (its back-off after the link came back) and the stop itself.
STALE_SLACK = 3.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHostCluster]:
    with multihost_cluster(tmp_path_factory.mktemp("multihost"), PREFIX, SUBNET) as running:
        yield running


def running(cluster: MultiHostCluster, name: str, count: int) -> list[dict[str, object]]:
    rows = [r for r in ps(cluster) if str(r["name"]).startswith(name)
            and r["state"].get("status") == "running"]  # type: ignore[union-attr]
    return rows if len(rows) >= count else []


def leader(cluster: MultiHostCluster) -> tuple[str, str]:
    roles = {h: cluster.daemons[h].ready.get("ROLE") for h in cluster.layout.schedulers}
    (lead,) = [h for h, role in roles.items() if role == "leader"]
    (standby,) = [h for h in roles if h != lead]
    return lead, standby


def count_in_log(cluster: MultiHostCluster, host: str, phrase: str) -> int:
    return cluster.log_path(host).read_text(errors="replace").count(phrase)


def test_a_job_spreads_over_the_four_workers(cluster: MultiHostCluster) -> None:
    cluster.shoal("run", "-d", "--replicas", "8", "--name", "web", "--restart", "always",
                  "busybox", *COMMAND)
    until(cluster, lambda: bool(running(cluster, "web", 8)), timeout=60)
    rows = running(cluster, "web", 8)
    assert Counter(r["node_id"] for r in rows) == {h: 2 for h in cluster.layout.worker_hosts}
    processes = census(cluster)
    assert_none_lost(cluster, ps(cluster), processes)
    assert not doubled(processes)


def test_logs_and_exec_from_the_client_reach_a_container_on_another_host(
        cluster: MultiHostCluster) -> None:
    until(cluster, lambda: bool(running(cluster, "web", 8)), timeout=60)
    row = running(cluster, "web", 8)[0]
    logs = cluster.shoal("logs", str(row["id"]))
    assert "hello from" in logs.stdout
    said = cluster.shoal("exec", str(row["id"]), "cat", "/proc/1/cmdline")
    assert "sleep" in said.stdout or "sh" in said.stdout
    host = cluster.shoal("exec", str(row["id"]), "echo", "across hosts")
    assert host.stdout.strip() == "across hosts"


def test_a_partitioned_worker_loses_nothing_and_its_stale_copies_end_after_healing(
        cluster: MultiHostCluster) -> None:
    until(cluster, lambda: bool(running(cluster, "web", 8)), timeout=60)
    cut = cluster.layout.worker_hosts[-1]
    moved = {str(r["id"]) for r in running(cluster, "web", 8) if r["node_id"] == cut}
    assert moved
    # At most once: spread one replica per worker, so one is on the host about to be cut off
    # (and its replacement has room on the others).
    cluster.shoal("run", "-d", "--exclusive", "--replicas", "4", "--name", "solo",
                  "--restart", "always", "busybox", *COMMAND)
    until(cluster, lambda: bool(running(cluster, "solo", 4)), timeout=60)
    exclusive = {str(r["id"]) for r in running(cluster, "solo", 4)}
    assert cut in {r["node_id"] for r in running(cluster, "solo", 4)}
    assert_exclusive_never_doubled(exclusive, census(cluster))
    cluster.topology.partition(cut)
    try:
        def replaced() -> bool:
            assert_exclusive_never_doubled(exclusive, census(cluster))  # at every look
            rows = running(cluster, "web", 8) + running(cluster, "solo", 4)
            return len(rows) == 12 and all(r["node_id"] != cut for r in rows)

        until(cluster, replaced, timeout=30)
        processes = census(cluster)
        assert_exclusive_never_doubled(exclusive, processes)
        stale = [pid for cid in moved for pid in processes.get(cid, {}).get(cut, [])]
        assert stale, "the partitioned worker's copies were expected to run on (at-least-once)"
        assert_none_lost(cluster, ps(cluster), processes)
    finally:
        cluster.topology.heal(cut)
    healed = time.monotonic()
    wait_pids_gone(stale, cluster.timing.heartbeat + STALE_SLACK)
    print(f"stale copies ended {time.monotonic() - healed:.2f} s after healing")
    processes = census(cluster)
    assert not doubled(processes)
    assert_exclusive_never_doubled(exclusive, processes)
    assert_none_lost(cluster, ps(cluster), processes)
    # A leader failover (later in this module) outlasts the fence delay, which fences every
    # exclusive container as it should: they are not that test's subject.
    cluster.shoal("rm", "-f", *sorted(exclusive))


SOME_TOKEN = "SHOAL-1-" + "a" * 52 + "-" + "b" * 52  # well formed, of no cluster


def test_a_rogue_worker_and_a_stranger_are_refused_and_a_revoked_key_is_cut(
        cluster: MultiHostCluster, tmp_path: Path) -> None:
    host = cluster.layout.client
    join = ["worker", "--join", cluster.scheduler_addresses, "--listen",
            f"tcp://{cluster.topology.ips[host]}:7399",
            "--state-dir", str(tmp_path / "rogue"), "--name", "rogue", "--driver", "process",
            "--ipc", "none"]
    without = cluster.shoal_on(host, *join, check=False)
    assert without.returncode == 1 and "--join needs --token" in without.stderr
    forged = cluster.shoal_on(host, *join, "--token", SOME_TOKEN, check=False)
    assert forged.returncode == 1 and "refused the join token" in forged.stderr, forged.stderr
    assert "rogue" not in cluster.shoal("nodes").stdout
    # Someone on the client host who never enrolled: refused, and told why.
    stranger = {"SHOAL_CONFIG": str(tmp_path / "stranger")}
    refused = cluster.shoal_on(host, "-H", cluster.scheduler_addresses, "ps", check=False,
                               env=stranger)
    assert refused.returncode == 1 and "CURVE" in refused.stderr, refused.stderr
    # A person enrolled, then revoked on a manager: cut from then on.
    lead = leader(cluster)[0]
    here = f"tcp://{cluster.topology.ips[lead]}:7375"
    token = cluster.shoal_on(lead, "-H", here, "join-token", "client", "-q").stdout.strip()
    cluster.shoal_on(host, "enroll", cluster.scheduler_addresses, "--token", token,
                     "--name", "temp", env=stranger)
    cluster.shoal_on(host, "-H", cluster.scheduler_addresses, "ps", env=stranger)
    cluster.shoal_on(lead, "-H", here, "key", "rm", "temp")
    after = cluster.shoal_on(host, "-H", cluster.scheduler_addresses, "ps", check=False,
                             env=stranger)
    assert after.returncode == 1 and "refused this client's key" in after.stderr, after.stderr


def test_one_etcd_member_killed_changes_no_leadership_and_work_goes_on(
        cluster: MultiHostCluster) -> None:
    lead, standby = leader(cluster)
    member = cluster.layout.etcd[cluster.layout.schedulers.index(lead)]  # the one it uses
    lost_before = count_in_log(cluster, lead, "leadership lost")
    led_before = count_in_log(cluster, standby, "leading the cluster")
    cluster.kill(member)
    try:
        cluster.shoal("run", "-d", "--name", "during-etcd-loss", "busybox", *COMMAND)
        until(cluster, lambda: bool(running(cluster, "during-etcd-loss", 1)), timeout=30)
    finally:
        cluster.restart(member)
    assert count_in_log(cluster, lead, "leadership lost") == lost_before
    assert count_in_log(cluster, standby, "leading the cluster") == led_before
    assert_none_lost(cluster, ps(cluster), census(cluster))


def test_the_standby_takes_over_from_a_killed_leader_and_workers_follow(
        cluster: MultiHostCluster) -> None:
    lead, standby = leader(cluster)
    led_before = count_in_log(cluster, standby, "leading the cluster")
    killed = time.monotonic()
    cluster.kill(lead)
    proc = cluster.daemons[standby].proc
    assert proc is not None

    assert led_before == 0, "the standby led before"
    asyncio.run(wait_for_log(cluster.log_path(standby), "leading the cluster", proc, timeout=30))
    cluster.shoal("run", "-d", "--name", "after-failover", "busybox", *COMMAND)
    failover = time.monotonic() - killed
    print(f"kill -9 of the leader to an accepted submit: {failover:.2f} s")
    assert failover <= cluster.timing.lease_ttl + 5
    workers = set(cluster.layout.worker_hosts)

    def followed() -> bool:
        nodes = cluster.shoal("nodes", "--format", "json").stdout
        ready = {n["node"]["id"] for n in json.loads(nodes)
                 if n["node"]["status"] == "ready"}
        return ready == workers and bool(running(cluster, "after-failover", 1))

    until(cluster, followed, timeout=30)
    assert_none_lost(cluster, ps(cluster), census(cluster))
