"""``failover_s`` and ``partition_duplicates_exclusive`` for ``python -m bench cluster``.

``failover_s``: on the netns topology (``bench._multihost``,
shoal's default heartbeat, node timeout and 10 s lease), the time from kill -9 of the leading
scheduler to the first submit the cluster accepts, as a user sees it: the ``shoal`` CLI on the
client host, given both schedulers, tried again at once after each refusal (each try is a CLI
start, ~0.3 s, which bounds the resolution).

``partition_duplicates_exclusive``: the same topology and timings; two ``run --exclusive``
replicas (restart always), one per worker; the worker of one is cut off the network until its
replica has been replaced on the other, then healed. Every process on the machine is looked at
every 50 ms (its cgroup says which container on which host): the figure is how many times an
exclusive container was seen running on two hosts at once. It must be 0."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._multihost import Layout, MultiHostCluster, Timing, Topology, census
from worker.images.testimage import build_layout

DEFAULT_TIMING = Timing(heartbeat=1.0, node_timeout=5.0, lease_ttl=10)
GIVE_UP_S = 60.0


def measure_failover() -> float:
    topology = Topology(f"bf{os.getpid() % 100000}", "10.241.62")
    layout = Layout(workers=2)
    topology.up(layout.hosts)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-failover-") as tmp:
        cluster = MultiHostCluster(topology, layout, DEFAULT_TIMING, Path(tmp) / "state")
        try:
            cluster.start()
            (lead,) = [h for h in layout.schedulers
                       if cluster.daemons[h].ready.get("ROLE") == "leader"]
            killed = time.monotonic()
            cluster.kill(lead)
            while time.monotonic() - killed < GIVE_UP_S:
                tried = cluster.shoal("create", "--name", "after-failover", "busybox", "true",
                                      check=False)
                if tried.returncode == 0:
                    return time.monotonic() - killed
            raise RuntimeError(f"no submit accepted {GIVE_UP_S:g} s after the leader died")
        finally:
            try:
                cluster.stop()
            finally:
                topology.down()


def measure_partition_duplicates() -> tuple[int, float]:
    """(times an exclusive container ran on two hosts at once, seconds from the cut to its
    replacement running)."""
    topology = Topology(f"bp{os.getpid() % 100000}", "10.241.63")
    layout = Layout(workers=2)
    topology.up(layout.hosts)
    with tempfile.TemporaryDirectory(prefix="shoal-bench-partition-") as tmp:
        cluster = MultiHostCluster(topology, layout, DEFAULT_TIMING, Path(tmp) / "state")
        try:
            cluster.start(build_layout(Path(tmp) / "busybox"))
            cluster.shoal("run", "-d", "--exclusive", "--replicas", "2", "--name", "solo",
                          "--restart", "always", "busybox", "sleep", "600")
            ids = {"solo.1", "solo.2"}
            where = _until(lambda: _placed(census(cluster), ids, set(layout.worker_hosts)))
            cut = where["solo.1"]
            other = ({*layout.worker_hosts} - {cut}).pop()
            duplicates = 0
            cluster.topology.partition(cut)
            started = time.monotonic()
            try:
                while time.monotonic() - started < GIVE_UP_S:
                    seen = census(cluster)
                    duplicates += sum(1 for cid in ids if len(seen.get(cid, {})) > 1)
                    if all(set(seen.get(cid, {})) == {other} for cid in ids):
                        break
                    time.sleep(0.05)
                else:
                    raise RuntimeError(f"no replacement {GIVE_UP_S:g} s after the cut")
                replaced = time.monotonic() - started
            finally:
                cluster.topology.heal(cut)
            healed = time.monotonic()
            while time.monotonic() - healed < 2 * DEFAULT_TIMING.node_timeout:
                seen = census(cluster)
                duplicates += sum(1 for cid in ids if len(seen.get(cid, {})) > 1)
                time.sleep(0.05)
            return duplicates, replaced
        finally:
            try:
                cluster.stop()
            finally:
                topology.down()


def _placed(seen: dict[str, dict[str, list[int]]], ids: set[str],
            hosts: set[str]) -> dict[str, str] | None:
    """Each of ``ids`` on one host, all hosts used: where; else None."""
    where = {cid: next(iter(seen[cid])) for cid in ids if len(seen.get(cid, {})) == 1}
    return where if len(where) == len(ids) and set(where.values()) == hosts else None


def _until(probe: Callable[[], dict[str, str] | None]) -> dict[str, str]:
    deadline = time.monotonic() + GIVE_UP_S
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not placed within {GIVE_UP_S:g} s")
        time.sleep(0.1)
    return found
