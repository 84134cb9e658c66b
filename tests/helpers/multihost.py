"""The multi-host suite's cluster (``bench._multihost``: the topology, the daemons' command
lines and ``until``, waiting on its event stream, shared with ``python -m bench cluster`` and
``network``), checks on the census of every container's processes on every host, and the count
of what container networking left in each host's kernel."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._multihost import Layout, MultiHostCluster, Timing, Topology, doubled
from worker.images.testimage import build_layout


@contextlib.contextmanager
def multihost_cluster(root: Path, prefix: str, subnet: str, timing: Timing | None = None,
                      layout: Layout | None = None) -> Iterator[MultiHostCluster]:
    """The whole cluster up (busybox imported), torn down and the namespaces removed when
    the block ends, pass or fail."""
    topology = Topology(prefix, subnet)
    layout = layout or Layout()
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


def network_leftovers(cluster: MultiHostCluster, host: str) -> dict[str, int]:
    """What container networking has on ``host``, counted from the kernel: veths, VXLAN
    devices and bridges, forwarding entries with a remote address, permanent neighbour
    entries, and the rules of shoal's nftables tables."""
    def read(*argv: str) -> Any:
        done = subprocess.run(cluster.topology.on(host, list(argv)), capture_output=True,
                              text=True, timeout=30, check=True, env=cluster.topology.env)
        return json.loads(done.stdout or "[]")

    links = read("ip", "-j", "-d", "link", "show")
    kinds = [link.get("linkinfo", {}).get("info_kind", "") for link in links]
    fdb = [e for e in read("bridge", "-j", "fdb", "show") if e.get("dst")]
    neigh = [e for e in read("ip", "-j", "neigh", "show", "nud", "permanent")]
    tables = read("nft", "-j", "list", "ruleset").get("nftables", [])
    rules = [t for t in tables if "rule" in t and t["rule"]["table"].startswith("shoal_")]
    return {"veth": kinds.count("veth"), "vxlan": kinds.count("vxlan"),
            "bridge": kinds.count("bridge"), "fdb": len(fdb), "neigh": len(neigh),
            "nft_rules": len(rules)}
