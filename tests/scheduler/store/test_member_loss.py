"""Losing one of three etcd members (kill -9) while a lease, leadership and watches depend on
the member their client uses: nothing is lost. The keepalive reconnects to another member and
keeps the lease; the leadership goes on under the same leader key; a watch resumes there from
its last revision. Over the embedded members' unix sockets and over https to members on
loopback TCP, as to an external cluster: TLS and client certificates on every reconnect."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from aetcd import rpc

from protocol.specs import ContainerSpec
from scheduler.store import (
    CONTAINERS,
    ContainerRecord,
    Election,
    EmbeddedEtcd,
    EtcdClient,
    Layout,
    LeaderRecord,
    Store,
    watch_records,
)
from tests.helpers.store_fixtures import Runner, kill_9, raft_leader

TTL = 3


def rec() -> ContainerRecord:
    return ContainerRecord(spec=ContainerSpec(image="busybox"))


@pytest.mark.parametrize("cluster", ["three_members", "three_members_https"])
def test_the_leaders_member_killed_changes_nothing(run: Runner[None], cluster: str,
                                                    request: pytest.FixtureRequest,
                                                    layout: Layout) -> None:
    three_members: list[EmbeddedEtcd] = request.getfixturevalue(cluster)

    async def body() -> None:
        # The worst member to lose: the one the leader's client uses and the raft leader too,
        # so the keepalive must wait out a raft election as well as find another member.
        doomed = await raft_leader(three_members)
        others = [m for i, m in enumerate(three_members) if i != doomed]
        mine = [three_members[doomed].endpoint, *(m.endpoint for m in others)]
        async with (EtcdClient(mine, timeout=5.0) as client,
                    EtcdClient([m.endpoint for m in others], timeout=5.0) as outside):
            store, writer = Store(client, layout), Store(outside, layout)
            leadership = await Election(client, layout, LeaderRecord(id="a"),
                                        ttl=TTL).campaign()
            lease = leadership.lease
            start = await store.revision()
            events = watch_records(client, layout, CONTAINERS, start_revision=start + 1)
            await writer.create(CONTAINERS, "before", rec())
            assert (await anext(events)).id == "before"

            kill_9(three_members[doomed].pid)
            async with asyncio.timeout(TTL * 3):
                renewals = lease.renewals
                while lease.renewals < renewals + 3:  # the keepalive lives, on a live member
                    await lease.renewed()
                # (A write in flight to a raft leader as it dies waits out etcd's own request
                # timeout: this one is sent once the keepalive shows a new raft leader.)
                await writer.create(CONTAINERS, "after", rec())
                # The watch resumed on another member from the revision after "before".
                assert (await anext(events)).id == "after"
            assert client.endpoint != three_members[doomed].endpoint
            assert not lease.lost.is_set() and not leadership.lost.is_set()
            assert await lease.time_to_live() > 0
            # The same leader key all along: a new election would have a new create revision.
            key = await outside.call("kv", "Range", rpc.RangeRequest(key=layout.leader_key),
                                     what="test")
            assert key.kvs[0].create_revision == leadership.create_revision
            await store.create(CONTAINERS, "fenced", rec(), fence=leadership)
            assert (await anext(events)).id == "fenced"
            await events.aclose()
            await leadership.resign()

    run(body, 30.0)


def test_a_member_that_stops_answering_is_passed_over_within_the_timeout(
        run: Runner[None], three_members: list[EmbeddedEtcd], layout: Layout) -> None:
    """A member that holds the connection and says nothing (stopped here with SIGSTOP, as a
    member killed mid-call or a hung host can) gets a share of a call's time, not all of it:
    the next member answers in time."""
    import time

    hung = three_members[0]

    async def body() -> None:
        async with EtcdClient([m.endpoint for m in three_members], timeout=6.0) as client:
            store = Store(client, layout)
            await store.create(CONTAINERS, "before", rec())  # the channel to member 0 is up
            os.kill(hung.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                await store.create(CONTAINERS, "during", rec())
                assert time.monotonic() - started < 5.0  # its share (2 s), then another
            finally:
                os.kill(hung.pid, signal.SIGCONT)
            assert await store.get(CONTAINERS, "during") is not None

    run(body)
