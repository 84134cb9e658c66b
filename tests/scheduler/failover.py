"""What the real-process failover tests share: the command line of a scheduler on a common
etcd, with timeouts short enough that a takeover happens within a test."""

from __future__ import annotations

from pathlib import Path

from scheduler.store import EmbeddedEtcd


def scheduler_args(etcd: EmbeddedEtcd, state_root: Path, name: str, address: str) -> list[str]:
    """``shoal scheduler`` arguments for a scheduler named ``name`` on ``address``."""
    return ["scheduler", "--etcd", etcd.endpoint.url, "--listen", address, "--name", name,
            "--state-dir", str(state_root / name), "--heartbeat-interval", "0.2",
            "--node-timeout", "2", "--lease-ttl", "2"]
