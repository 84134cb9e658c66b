"""What the real-process failover tests share: the command line of a scheduler on a common
etcd, with timeouts short enough that a takeover happens within a test. It listens on a port
of its choosing and says which when ready (``DevCluster.launch`` reads it: ``ready[name]``)."""

from __future__ import annotations

from pathlib import Path

from scheduler.store import EmbeddedEtcd


def scheduler_args(etcd: EmbeddedEtcd, state_root: Path, name: str) -> list[str]:
    """``shoal scheduler`` arguments for a scheduler named ``name``, its state under
    ``state_root``."""
    return ["scheduler", *etcd.etcd_flags(), "--listen", "tcp://127.0.0.1:0",
            "--name", name, "--state-dir", str(state_root / name), "--heartbeat-interval",
            "0.2", "--node-timeout", "2", "--lease-ttl", "2"]
