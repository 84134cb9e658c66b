"""``failover_s`` for ``python -m bench cluster``: on the netns topology (``bench._multihost``,
shoal's default heartbeat, node timeout and 10 s lease), the time from kill -9 of the leading
scheduler to the first submit the cluster accepts, as a user sees it: the ``shoal`` CLI on the
client host, given both schedulers, tried again at once after each refusal (each try is a CLI
start, ~0.3 s, which bounds the resolution)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench._multihost import Layout, MultiHostCluster, Timing, Topology

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
