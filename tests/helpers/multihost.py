"""The multi-host suite's cluster (``bench._multihost``: the topology and the daemons' command
lines, shared with ``python -m bench cluster``), waiting on its event stream from the client
host, and the census of every container's processes on every host."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench._multihost import Layout, MultiHostCluster, Timing, Topology, doubled
from worker.images.testimage import build_layout


@contextlib.contextmanager
def multihost_cluster(root: Path, prefix: str, subnet: str,
                      timing: Timing | None = None) -> Iterator[MultiHostCluster]:
    """The whole cluster up (busybox imported), torn down and the namespaces removed when
    the block ends, pass or fail."""
    topology = Topology(prefix, subnet)
    layout = Layout()
    topology.up(layout.hosts)
    cluster = MultiHostCluster(topology, layout, timing or Timing(), root / "state")
    try:
        cluster.start(build_layout(root / "busybox"))
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            topology.down()


def ps(cluster: MultiHostCluster) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(cluster.shoal("ps", "-a", "--format", "json").stdout)
    return rows


def until(cluster: MultiHostCluster, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Until ``check()``: asked again after each event of the cluster (``shoal events`` on the
    client host; started again when it ends, as at a failover)."""
    deadline = time.monotonic() + timeout
    events: subprocess.Popen[str] | None = None
    try:
        while not check():
            if events is None or events.poll() is not None:
                events = cluster.watch_events()
                continue  # look again: something may have happened before it watched
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"condition not reached within {timeout:g} s"
            assert events.stdout is not None
            if select.select([events.stdout], [], [], remaining)[0]:
                os.read(events.stdout.fileno(), 65536)  # the events themselves say nothing more
    finally:
        if events is not None:
            events.kill()
            events.wait(10)
            if events.stdout is not None:
                events.stdout.close()


def assert_none_lost(cluster: MultiHostCluster, rows: list[dict[str, Any]],
                     processes: dict[str, dict[str, list[int]]]) -> None:
    """Every container ps says runs has processes on the host ps names."""
    for row in rows:
        if row["state"].get("status") == "running":
            assert processes.get(row["id"], {}).get(row["node_id"]), (
                f"{row['name']} runs on {row['node_id']} per ps, but no process of it is there: "
                f"{processes.get(row['id'])}")


def assert_exclusive_never_doubled(exclusive_ids: set[str],
                                   processes: dict[str, dict[str, list[int]]]) -> None:
    """Exclusive containers (``run --exclusive``) never run on two hosts at once: the
    partition test starts some and checks them at every census."""
    twice = {cid: hosts for cid, hosts in doubled(processes).items() if cid in exclusive_ids}
    assert not twice, f"exclusive containers ran on two hosts: {twice}"


def wait_pids_gone(pids: list[int], timeout: float) -> None:
    """Until every process in ``pids`` has exited (pidfds)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            remaining = max(0.0, deadline - time.monotonic())
            assert select.select([fd], [], [], remaining)[0], (
                f"process {pid} still runs {timeout:g} s on")
        finally:
            os.close(fd)
