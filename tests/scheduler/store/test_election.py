"""Leases and leader election against a real etcd, with holders killed by SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.specs import ContainerSpec
from scheduler.store import (
    CONTAINERS,
    CommitOutcome,
    ContainerRecord,
    Create,
    Election,
    EmbeddedEtcd,
    Layout,
    LeaderRecord,
    Leadership,
    Lease,
    NotLeader,
    watch_records,
)
from tests.helpers.store_fixtures import Runner, open_store

TTL = 2
ROOT = Path(__file__).resolve().parents[3]


def rec() -> ContainerRecord:
    return ContainerRecord(spec=ContainerSpec(image="busybox"))


@contextlib.contextmanager
def holder(server: EmbeddedEtcd, layout: Layout, mode: str) -> Iterator[tuple[int, int]]:
    """A subprocess holding a lease or leadership: yields (pid, revision); always killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    tls = server.endpoint.tls
    files = [str(tls.cacert), str(tls.cert), str(tls.key)] if tls else []
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("holder.py")), server.endpoint.url,
         layout.root, mode, str(TTL), *files], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().split()
        assert line[:1] == ["ready"], line
        yield proc.pid, int(line[1])
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_lease_keeps_alive_then_expires_after_sigkill(run: Runner[None], etcd: EmbeddedEtcd,
                                                      layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            with holder(etcd, layout, "lease") as (pid, rev):
                got = await store.get(CONTAINERS, "held")
                assert got is not None
                events = watch_records(store.client, layout, CONTAINERS,
                                       start_revision=rev + 1)
                os.kill(pid, 9)
                # The key goes when etcd expires the dead holder's lease: within ~TTL.
                async with asyncio.timeout(TTL * 4):
                    event = await anext(events)
                assert (event.type, event.id) == ("delete", "held")
                await events.aclose()

            # Our own keepalive holds a lease well past its TTL; revoking drops its keys.
            lease = await Lease.grant(store.client, 1)
            await store.create(CONTAINERS, "mine", rec(), lease=lease.id)
            rev = await store.revision()
            events = watch_records(store.client, layout, CONTAINERS, start_revision=rev + 1)
            await store.create(CONTAINERS, "marker", rec())
            async with asyncio.timeout(10):
                while lease.renewals < 6:  # six keepalive rounds: two TTLs of wall time
                    await lease.renewed()
            assert not lease.lost.is_set()
            assert await store.get(CONTAINERS, "mine") is not None
            await lease.revoke()
            assert lease.lost.is_set()
            kinds = [(e.type, e.id) for e in [await anext(events), await anext(events)]]
            assert kinds == [("put", "marker"), ("delete", "mine")]
            await events.aclose()

    run(body)


def test_two_contenders_and_a_killed_leader(run: Runner[None], etcd: EmbeddedEtcd,
                                            layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            election = Election(store.client, layout, LeaderRecord(id="b"), ttl=TTL)
            with holder(etcd, layout, "leader") as (pid, _):
                leader = await election.leader()
                assert leader is not None
                assert leader.id == "holder"
                observed = election.observe()
                assert (await anext(observed)) == LeaderRecord(id="holder")
                campaign = asyncio.create_task(election.campaign())
                await asyncio.sleep(0)
                assert not campaign.done()
                os.kill(pid, 9)
                # The successor takes over once the dead leader's lease ends (~TTL).
                async with asyncio.timeout(TTL * 4):
                    ours = await campaign
                    assert (await anext(observed)) is None
                    assert (await anext(observed)) == LeaderRecord(id="b")
                await observed.aclose()
            assert not ours.lost.is_set()
            await store.create(CONTAINERS, "by-leader", rec(), fence=ours)
            await ours.resign()
            assert await election.leader() is None
            with pytest.raises(NotLeader):
                await store.create(CONTAINERS, "after-resign", rec(), fence=ours)

    run(body)


def test_three_contenders_one_leader_at_a_time(run: Runner[None], etcd: EmbeddedEtcd,
                                               layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            elections = [Election(store.client, layout, LeaderRecord(id=f"s{i}"), ttl=TTL)
                         for i in range(3)]
            pending = {asyncio.create_task(e.campaign()) for e in elections}
            held: list[Leadership] = []
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                assert len(done) == 1  # never two winners at once
                leadership = done.pop().result()
                assert all(old.lost.is_set() for old in held)
                now = await elections[0].leader()
                assert now == leadership.record
                held.append(leadership)
                await store.create(CONTAINERS, leadership.record.id, rec(), fence=leadership)
                await leadership.resign()
            assert sorted(h.record.id for h in held) == ["s0", "s1", "s2"]
            assert await store.count(CONTAINERS) == 3

    run(body)


def test_deposed_leader_cannot_commit(run: Runner[None], etcd: EmbeddedEtcd,
                                      layout: Layout) -> None:
    async def body() -> None:
        store = open_store(etcd, layout)
        async with store.client:
            a = await Election(store.client, layout, LeaderRecord(id="a"), ttl=TTL).campaign()
            stale_guard = a.fence()  # what a's writes carry until it learns of its loss
            # a's lease is revoked behind its back (as when it is cut off past its TTL) ...
            await store.client.call("lease", "LeaseRevoke", _revoke(a.lease.id), what="test")
            b = await Election(store.client, layout, LeaderRecord(id="b"), ttl=TTL).campaign()
            # ... so etcd refuses a write carrying its old fence, whatever a believes,
            result = await store.commit([Create(CONTAINERS, "x", rec())], fence=stale_guard)
            assert result.results[0].outcome is CommitOutcome.NOT_LEADER
            # and a learns at once, then refuses locally without asking etcd.
            async with asyncio.timeout(TTL * 2):
                await a.lost.wait()
            with pytest.raises(NotLeader):
                a.fence()
            await store.create(CONTAINERS, "y", rec(), fence=b)
            assert [r.id async for r in store.list(CONTAINERS)] == ["y"]
            await a.close()
            await a.lease.revoke()
            await b.resign()

    run(body)


def _revoke(lease_id: int) -> object:
    from aetcd import rpc

    return rpc.LeaseRevokeRequest(ID=lease_id)
