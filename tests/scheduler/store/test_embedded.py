"""The embedded etcd manager: a clear error without a binary, no orphan when the parent dies,
a three-member cluster that keeps serving with one member stopped, its unix sockets (stale
ones removed, taken ones refused, a path too long named), and an etcd that dies restarted."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
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
    Election,
    EmbeddedEtcd,
    EtcdClient,
    EtcdMissing,
    EtcdStartFailed,
    Layout,
    LeaderRecord,
    Store,
    find_etcd,
    local_cluster,
    watch_records,
)
from tests.helpers.store_fixtures import ELECTION_MS, HEARTBEAT_MS, Runner, kill_9

ROOT = Path(__file__).resolve().parents[3]
# Long enough to outlast an etcd restart (its own election timeout of 1 s included).
LEASE_TTL = 6


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
                store = Store(EtcdClient.from_spec(spec, tls=members[0].endpoint.tls,
                                                   timeout=5.0), Layout())
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


def test_a_member_killed_with_sigkill_starts_again_on_its_sockets(tmp_path: Path) -> None:
    """etcd leaves its sockets behind when killed; the next start removes them and serves."""
    etcd = EmbeddedEtcd(tmp_path / "etcd", restart=False)
    etcd.start()
    try:
        pid, supervisor = etcd.pid, etcd.supervisor_pid
        os.kill(pid, signal.SIGKILL)
        assert _wait_exit(pid, 20)
        assert _wait_exit(supervisor, 20)  # without restarts, it ends with etcd
        assert etcd.client_socket.exists()  # stale: nobody listens there now
        assert not etcd.running
        etcd.stop()
        etcd.start()
        assert etcd.pid != pid
    finally:
        etcd.stop()


def test_a_second_etcd_on_the_same_sockets_is_refused(tmp_path: Path) -> None:
    first = EmbeddedEtcd(tmp_path / "etcd")
    first.start()
    try:
        with pytest.raises(EtcdStartFailed, match="another etcd already serves on"):
            EmbeddedEtcd(tmp_path / "etcd").start()
        assert first.running
    finally:
        first.stop()


def test_a_socket_path_too_long_is_named(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100) / "etcd"
    with pytest.raises(EtcdStartFailed, match="longer than the 107 bytes"):
        EmbeddedEtcd(deep).start()


def test_a_killed_etcd_is_restarted_and_its_clients_carry_on(run: Runner[None],
                                                            tmp_path: Path) -> None:
    """The supervisor starts a dead etcd again (on its stale sockets, with its data); a
    client's next call waits it out, and a leadership held across the restart is kept."""
    etcd = EmbeddedEtcd(tmp_path / "etcd")
    etcd.start()
    try:
        async def body() -> None:
            store = Store(EtcdClient([etcd.endpoint], timeout=10.0), Layout())
            async with store.client:
                leadership = await Election(store.client, store.layout, LeaderRecord(id="a"),
                                            ttl=LEASE_TTL).campaign()
                await store.create(CONTAINERS, "kept", rec(), fence=leadership)
                for _ in range(2):  # and again: the supervisor does not give up
                    killed = etcd.pid
                    kill_9(killed)
                    assert await store.get(CONTAINERS, "kept") is not None
                    assert etcd.pid not in (0, killed)
                async with asyncio.timeout(LEASE_TTL):
                    renewals = leadership.lease.renewals
                    while leadership.lease.renewals < renewals + 2:
                        await leadership.lease.renewed()
                assert not leadership.lost.is_set()
                await store.create(CONTAINERS, "after", rec(), fence=leadership)
                await leadership.resign()

        run(body, 40.0)
        assert "etcd restarted" in etcd.log_path.read_text()
    finally:
        etcd.stop()
    assert not _serving_socket(etcd.client_socket)


def _serving_socket(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True
