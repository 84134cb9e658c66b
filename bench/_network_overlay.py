"""The overlay half of ``python -m bench network``.

On a cluster across network-namespace hosts (``bench._multihost``: one etcd, one scheduler,
two workers and a client, the busybox test image):

- ``overlay_throughput_ratio``: iperf3 (Debian's) between two containers on one overlay
  network, one on each worker host, divided by iperf3 between the two hosts' own namespaces
  directly — the reference, measured in the same run, round after round (the median of each).
  iperf3 is the host's binary run inside each container's network namespace (``nsenter``):
  the containers' image has none, and only the network path is measured. Goal ≥ 0.7.
- ``overlay_gbit_s`` / ``direct_gbit_s``: the medians themselves.
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import time
from pathlib import Path

from bench._multihost import Layout, MultiHostCluster, Timing, Topology, census, until
from worker.images.testimage import build_layout

LAYOUT = Layout(workers=2, etcd=("etcd1",), schedulers=("sched1",))
LOOP = ["sh", "-c", 'trap "exit 0" TERM; while :; do sleep 1 & wait; done']
IPERF_PORT = "5201"
READY_TIMEOUT = 30.0


def _iperf(server: list[str], client: list[str], address: str, seconds: float,
           env: dict[str, str]) -> float:
    """Bits per second from ``client`` to ``server`` (command prefixes that enter a
    namespace), one TCP stream for ``seconds``."""
    # --forceflush: iperf3 block-buffers a pipe, and "listening" is what says it is ready.
    served = subprocess.Popen([*server, "iperf3", "-s", "-1", "-p", IPERF_PORT,
                               "--forceflush"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env)
    try:
        assert served.stdout is not None
        said = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while b"listening" not in said:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([served.stdout], [], [], remaining)[0]:
                raise TimeoutError(f"iperf3 server not listening in {READY_TIMEOUT:g} s")
            chunk = os.read(served.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"iperf3 server ended: {said.decode(errors='replace')}")
            said += chunk
        done = subprocess.run([*client, "iperf3", "-c", address, "-p", IPERF_PORT, "-J",
                               "-t", str(seconds)], capture_output=True, text=True,
                              timeout=seconds + 60, env=env, check=True)
    finally:
        served.kill()
        served.wait(10)
    result = json.loads(done.stdout)
    return float(result["end"]["sum_received"]["bits_per_second"])


def _running(cluster: MultiHostCluster, names: set[str]) -> bool:
    rows = json.loads(cluster.shoal("ps", "-a", "--format", "json").stdout)
    return names <= {r["name"] for r in rows if r["state"].get("status") == "running"}


def _netns(cluster: MultiHostCluster, name: str) -> list[str]:
    rows = json.loads(cluster.shoal("ps", "-a", "--format", "json").stdout)
    (cid,) = [r["id"] for r in rows if r["name"] == name]
    (pids,) = census(cluster)[cid].values()
    return ["nsenter", f"--net=/proc/{pids[0]}/ns/net"]


def measure(root: Path, seconds: float, rounds: int) -> dict[str, object]:
    prefix = f"bn{os.getpid() % 100000}"
    topology = Topology(prefix, "10.241.98")
    topology.up(LAYOUT.hosts)
    cluster = MultiHostCluster(topology, LAYOUT, Timing(), root / "state")
    try:
        cluster.start(build_layout(root / "busybox"))
        cluster.shoal("network", "create", "--driver", "overlay", "--attachable", "benchnet")
        for name, host in (("perf1", "worker1"), ("perf2", "worker2")):
            cluster.shoal("run", "-d", "--name", name, "--network", "benchnet", "-c",
                          f"node.labels.host=={host}", "busybox", *LOOP)
        until(cluster, lambda: _running(cluster, {"perf1", "perf2"}), timeout=60)
        one, two = _netns(cluster, "perf1"), _netns(cluster, "perf2")
        out = cluster.shoal("exec", "perf1", "ip", "-4", "-o", "addr", "show", "eth0").stdout
        overlay_ip = out.split("inet ")[1].split("/")[0]
        env = topology.env
        direct, overlay = [], []
        for _ in range(rounds):
            direct.append(_iperf(topology.on("worker1", []), topology.on("worker2", []),
                                 topology.ips["worker1"], seconds, env))
            overlay.append(_iperf(one, two, overlay_ip, seconds, env))
    finally:
        try:
            cluster.stop()
        finally:
            topology.down()
    direct_bps, overlay_bps = statistics.median(direct), statistics.median(overlay)
    return {"seconds": seconds, "rounds": rounds,
            "direct_gbit_s": round(direct_bps / 1e9, 3),
            "overlay_gbit_s": round(overlay_bps / 1e9, 3),
            "overlay_throughput_ratio": round(overlay_bps / direct_bps, 3),
            "direct_runs_gbit_s": [round(b / 1e9, 3) for b in direct],
            "overlay_runs_gbit_s": [round(b / 1e9, 3) for b in overlay]}
