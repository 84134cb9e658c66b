"""The embedded etcd manager: a clear error without a binary, no orphan when the parent dies,
and a three-member cluster that keeps serving with one member stopped."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from protocol.specs import ContainerSpec
from scheduler.store import (
    CONTAINERS,
    ContainerRecord,
    Create,
    EtcdClient,
    EtcdMissing,
    Layout,
    Store,
    find_etcd,
    local_cluster,
    watch_records,
)
from tests.scheduler.store.conftest import ELECTION_MS, HEARTBEAT_MS, Runner

ROOT = Path(__file__).resolve().parents[3]


def rec() -> ContainerRecord:
    return ContainerRecord(spec=ContainerSpec(image="busybox"))


def test_missing_binary_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(EtcdMissing, match="etcd-server") as info:
        find_etcd(path=str(tmp_path))
    assert info.value.details["package"] == "etcd-server"


def _wait_exit(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not our child) exits within ``timeout``: waits on a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


PARENT = """
import sys
from pathlib import Path
import structlog
from scheduler.store import EmbeddedEtcd
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
etcd = EmbeddedEtcd(Path(sys.argv[1]) / "etcd")
etcd.start()
print(etcd.pid, flush=True)
sys.stdin.read()
"""


def test_no_orphan_when_the_parent_is_sigkilled() -> None:
    with tempfile.TemporaryDirectory(prefix="shoal-store-test-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        parent = subprocess.Popen([sys.executable, "-c", PARENT, tmp], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        try:
            assert parent.stdout is not None
            etcd_pid = int(parent.stdout.readline())
            assert not _wait_exit(etcd_pid, 0)  # etcd is running
            parent.kill()
            parent.wait()
            assert _wait_exit(etcd_pid, 20), "etcd outlived its parent"
        finally:
            parent.kill()
            parent.wait()
            for stream in (parent.stdin, parent.stdout):
                if stream is not None:
                    stream.close()


def test_three_member_cluster_with_one_member_stopped(run: Runner[None]) -> None:
    with tempfile.TemporaryDirectory(prefix="shoal-store-test-") as tmp:
        members = local_cluster(Path(tmp), 3, heartbeat_ms=HEARTBEAT_MS,
                                election_ms=ELECTION_MS)
        try:
            for member in members:
                member.spawn()
            for member in members:
                member.wait_ready()

            async def body() -> None:
                spec = ",".join(m.endpoint.url for m in members)
                store = Store(EtcdClient.from_spec(spec, timeout=5.0), Layout())
                async with store.client:
                    await store.commit([Create(CONTAINERS, f"c{i}", rec()) for i in range(300)])
                    start = await store.revision()
                    events = watch_records(store.client, store.layout, CONTAINERS,
                                           start_revision=start + 1)
                    members[0].stop()  # the member the client was using
                    result = await store.commit([Create(CONTAINERS, f"d{i}", rec())
                                                 for i in range(300)])
                    assert result.all_committed
                    assert await store.count(CONTAINERS) == 600
                    got = await store.get(CONTAINERS, "d299")
                    assert got is not None
                    # The watch moved to a live member too: every new record, exactly once.
                    seen = [(await anext(events)).id for _ in range(300)]
                    assert sorted(seen) == sorted(f"d{i}" for i in range(300))
                    await events.aclose()

            run(body)
        finally:
            for member in members:
                member.stop()
