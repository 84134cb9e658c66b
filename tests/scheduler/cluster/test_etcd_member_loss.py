"""Schedulers on a three-member etcd, each member lost by kill -9 under the scheduler using
it: the leader keeps leading on another member (same leadership, writes go on), and a standby
neither crashes nor lets its campaign lapse: it still names the leader, and takes over when
the leader goes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aetcd import rpc

from protocol.errors import Unavailable
from protocol.messages import SubmitJob, Submitted
from protocol.specs import ContainerSpec
from scheduler.cluster.daemon import SchedulerDaemon
from scheduler.store import EmbeddedEtcd, EtcdClient, Layout, Lease
from tests.helpers.in_process_cluster import agents, ask, scheduler
from tests.helpers.store_fixtures import Runner, kill_9, outlast_a_ttl, raft_leader

TTL = 3


def leader_lease(daemon: SchedulerDaemon) -> Lease:
    leader = daemon.api.leader
    assert leader is not None, "not leading"
    return leader.leadership.lease


async def live_leases(members: list[EmbeddedEtcd]) -> set[int]:
    """The leases alive in etcd, less those that hold a scheduler's ``managers/`` record (every
    scheduler registers itself under a lease of its own, besides its campaign's)."""
    async with EtcdClient([m.endpoint for m in members], timeout=5.0) as client:
        listed = await client.call("lease", "LeaseLeases", rpc.LeaseLeasesRequest(),
                                   what="test")
        alive = set()
        for lease in listed.leases:
            held = await client.call("lease", "LeaseTimeToLive", rpc.LeaseTimeToLiveRequest(
                ID=lease.ID, keys=True), what="test")
            if not any(b"/managers/" in key for key in held.keys):
                alive.add(lease.ID)
        return alive


def spec(name: str) -> ContainerSpec:
    return ContainerSpec(image="busybox", name=name)


def test_the_leaders_member_killed_changes_no_leader(run: Runner[None],
                                                     three_members: list[EmbeddedEtcd],
                                                     layout: Layout) -> None:
    async def body() -> None:
        doomed = await raft_leader(three_members)  # the raft leader too: the worst case
        order = [doomed, *(i for i in range(3) if i != doomed)]
        mine = [three_members[i].endpoint for i in order]
        theirs = [three_members[i].endpoint for i in (order[1], order[2], order[0])]
        async with scheduler(mine, layout, "s1", lease_ttl=TTL) as s1:
            await s1.leading.wait()
            async with scheduler(theirs, layout, "s2", lease_ttl=TTL) as s2:
                await s2.following.wait()
                leader = s1.api.leader
                async with agents([s1.address, s2.address], ["a"]) as pool:
                    kill_9(three_members[doomed].pid)
                    async with asyncio.timeout(TTL * 3):
                        await outlast_a_ttl(leader_lease(s1))
                    assert s1.api.leader is leader and not leader.leadership.lost.is_set()
                    reply = await ask(s1.address, lambda r: SubmitJob(spec=spec("w"), reply=r))
                    assert isinstance(reply, Submitted) and reply.ids == ["w.1"]
                    await pool["a"].until(lambda a: "w.1" in a.running())
                    assert s2.api.leader_record is not None
                    assert s2.api.leader_record.id == "s1"

    run(body, 40.0)


def test_a_standby_survives_losing_its_member_and_still_follows(
        run: Runner[None], three_members: list[EmbeddedEtcd], layout: Layout) -> None:
    async def body() -> None:
        doomed = await raft_leader(three_members)  # the raft leader too: the worst case
        order = [doomed, *(i for i in range(3) if i != doomed)]
        theirs = [three_members[i].endpoint for i in (order[1], order[2], order[0])]
        mine = [three_members[i].endpoint for i in order]
        async with contextlib.AsyncExitStack() as leading:
            s1 = await leading.enter_async_context(
                scheduler(theirs, layout, "s1", lease_ttl=TTL))
            await s1.leading.wait()
            async with scheduler(mine, layout, "s2", lease_ttl=TTL) as s2:
                assert s2.election is not None
                await s2.election.waiting.wait()
                campaigning = await live_leases(three_members) - {leader_lease(s1).id}
                assert len(campaigning) == 1, "the standby campaigns under one lease"
                kill_9(three_members[doomed].pid)
                async with asyncio.timeout(TTL * 3):
                    await outlast_a_ttl(leader_lease(s1))
                # The standby's campaign lease outlived its member: renewed on another.
                assert campaigning <= await live_leases(three_members)
                assert s2.api.leader is None
                with pytest.raises(Unavailable) as err:
                    await ask(s2.address, lambda r: SubmitJob(spec=spec("x"), reply=r))
                assert err.value.details["leader_id"] == "s1"
                # It still campaigns, and still watches the leader key: s1 resigns, s2 leads.
                await leading.aclose()
                async with asyncio.timeout(TTL * 3):
                    await s2.leading.wait()
                assert s2.api.leader_record is not None and s2.api.leader_record.id == "s2"

    run(body, 40.0)
