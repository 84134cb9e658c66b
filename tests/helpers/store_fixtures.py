"""A pytest plugin (loaded by tests/conftest.py) for tests that need etcd: private etcd
processes, a key root per test, and a uvloop runner for async test bodies.

Every etcd started here is stopped when its fixture ends, pass or fail, and its data directory
is removed.
"""

from __future__ import annotations

import os
import select
import signal
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from scheduler.store import (
    EmbeddedEtcd,
    EtcdClient,
    Layout,
    Lease,
    MemberConfig,
    Store,
    local_cluster,
)
from tests.helpers.bounded_run import run as run_bounded

T = TypeVar("T")
Runner = Callable[[Callable[[], Awaitable[T]]], T]

# Short raft timings let tests use 1-2 s leases (etcd's minimum TTL is 1.5 election timeouts).
HEARTBEAT_MS = 50
ELECTION_MS = 500


def make_etcd(base: Path, name: str = "test") -> EmbeddedEtcd:
    config = MemberConfig(name, heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS)
    return EmbeddedEtcd(base / name, config=config)


@pytest.fixture
def run() -> Runner[object]:
    """Run an async test body on a fresh uvloop loop, bounded by a timeout."""

    def runner(body: Callable[[], Awaitable[T]], timeout: float = 45.0) -> T:
        return run_bounded(body, timeout)

    return runner  # type: ignore[return-value]


@pytest.fixture(scope="session")
def tmp_base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="shoal-store-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def etcd(tmp_base: Path) -> Iterator[EmbeddedEtcd]:
    """One etcd shared by the tests that do not restart or compact it (store, cluster and CLI
    tests); each uses its own root (``layout``)."""
    server = make_etcd(tmp_base, "shared")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_etcd() -> Iterator[EmbeddedEtcd]:
    """An etcd of the test's own, for tests that restart or compact it."""
    with tempfile.TemporaryDirectory(prefix="shoal-store-test-") as tmp:
        server = make_etcd(Path(tmp), "private")
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _three_members(client_host: str = "") -> Iterator[list[EmbeddedEtcd]]:
    with tempfile.TemporaryDirectory(prefix="shoal-store-test-") as tmp:
        members = local_cluster(Path(tmp), 3, heartbeat_ms=HEARTBEAT_MS,
                                election_ms=ELECTION_MS, restart=False,
                                client_host=client_host)
        try:
            for member in members:
                member.spawn()
            for member in members:
                member.wait_ready()
            yield members
        finally:
            for member in members:
                member.stop()


@pytest.fixture
def three_members() -> Iterator[list[EmbeddedEtcd]]:
    """A three-member etcd cluster of the test's own, serving (on unix sockets, TLS and client
    certificates). A member killed stays dead (no restart): a member lost for good, as when
    its host is."""
    yield from _three_members()


@pytest.fixture
def three_members_https() -> Iterator[list[EmbeddedEtcd]]:
    """``three_members`` serving clients on https://127.0.0.1:PORT, as an external cluster's
    members do: certificates of a CA of their own, client certificates required."""
    yield from _three_members("127.0.0.1")


def kill_9(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL ``pid`` and return once it has exited (its pidfd is readable)."""
    fd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        assert select.select([fd], [], [], timeout)[0], f"{pid} outlived SIGKILL"
    finally:
        os.close(fd)


async def outlast_a_ttl(lease: Lease) -> None:
    """Return once ``lease`` was renewed for more than a TTL's worth of time from now (every
    TTL/3): any lease left unrenewed since then has expired in etcd."""
    renewals = lease.renewals
    while lease.renewals < renewals + 4:
        await lease.renewed()


@pytest.fixture
def layout() -> Layout:
    """A root of the test's own, so tests sharing one etcd never see each other's keys."""
    return Layout(f"/test-{uuid.uuid4().hex[:12]}/shoal/v1/")


def open_store(server: EmbeddedEtcd, layout: Layout) -> Store:
    return Store(EtcdClient([server.endpoint], timeout=5.0), layout)


async def raft_leader(members: list[EmbeddedEtcd]) -> int:
    """The index of the member that is raft leader now (as the first member to answer says)."""
    from aetcd import rpc  # only the tests that need it pay for it

    async with EtcdClient([m.endpoint for m in members], timeout=5.0) as client:
        status = await client.call("maintenance", "Status", rpc.StatusRequest(), what="status")
        ids = []
        for index in range(len(members)):
            _, stub = client.stub("maintenance", index)
            own = await stub.Status(rpc.StatusRequest(), timeout=5.0)
            ids.append(own.header.member_id)
        return ids.index(status.leader)
