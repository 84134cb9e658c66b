"""Several schedulers: a standby refuses writes naming the leader; kill -9 of the leader hands
the cluster to the standby with no submitted container lost or duplicated."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from cli.dev import DevCluster
from protocol.errors import Unavailable
from protocol.messages import ContainerList, ListContainers, SubmitJob, Submitted
from protocol.specs import ContainerSpec, RestartPolicy
from scheduler.store import Election, EmbeddedEtcd, EtcdClient, Layout, LeaderRecord
from tests.helpers.in_process_cluster import agents, ask, scheduler
from tests.helpers.store_fixtures import Runner


def test_standby_serves_reads_and_names_the_leader_for_writes(run: Runner[None],
                                                              etcd: EmbeddedEtcd,
                                                              layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout, "s1") as s1:
            await s1.leading.wait()
            async with scheduler(etcd, layout, "s2") as s2:
                await s2.leader_known.wait()  # the standby learned who leads
                spec = ContainerSpec(image="busybox", name="x")
                with pytest.raises(Unavailable) as err:
                    await ask(s2.address, lambda r: SubmitJob(spec=spec, reply=r))
                assert err.value.details["leader"] == s1.address
                assert err.value.details["leader_id"] == "s1"
                async with agents([s2.address], ["a"]) as pool:  # follows the leader
                    assert pool["a"].scheduler == s1.address
                    await ask(s1.address, lambda r: SubmitJob(spec=spec, reply=r))
                    await pool["a"].until(lambda a: "x.1" in a.running())
                    listed = await ask(s2.address, lambda r: ListContainers(reply=r))
                    assert isinstance(listed, ContainerList)
                    assert [(c.id, c.node_id) for c in listed.containers] == [("x.1", "a")]

    run(body)


def _scheduler_args(etcd: EmbeddedEtcd, layout: Layout, state_root: Path,
                    name: str) -> list[str]:
    return ["scheduler", *etcd.etcd_flags(), "--listen", "tcp://127.0.0.1:0",
            "--name", name, "--store-root", layout.root, "--state-dir", str(state_root / name),
            "--heartbeat-interval", "0.1", "--node-timeout", "5", "--lease-ttl", "2",
            "--insecure"]  # the simulated agents here are in-process, without keys


def test_kill_9_leader_standby_takes_over_nothing_lost_or_duplicated(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout, tmp_path: Path) -> None:
    procs = DevCluster(tmp_path, "", workers=0)  # its process plumbing, not its start()

    async def leader_is(election: Election, name: str) -> LeaderRecord:
        async for record in election.observe():
            if record is not None and record.id == name:
                return record
        raise AssertionError("observe ended")

    async def body() -> None:
        async with EtcdClient([etcd.endpoint]) as client:
            election = Election(client, layout, LeaderRecord(id="observer"))
            try:
                s1 = await procs.launch("s1", _scheduler_args(etcd, layout, tmp_path, "s1"))
                await leader_is(election, "s1")
                await procs.launch("s2", _scheduler_args(etcd, layout, tmp_path, "s2"))
                addresses = [procs.ready[name]["LISTEN"] for name in ("s1", "s2")]
                async with agents(addresses, ["a", "b", "c"]) as pool:
                    assert {a.scheduler for a in pool.values()} == {addresses[0]}
                    spec = ContainerSpec(image="busybox", name="first",
                                         restart=RestartPolicy(name="always"))
                    reply = await ask(addresses[0], lambda r: SubmitJob(
                        spec=spec, replicas=12, reply=r))
                    assert isinstance(reply, Submitted) and len(reply.ids) == 12
                    first = set(reply.ids)

                    def runs(ids: set[str]) -> bool:
                        return ids <= {c for a in pool.values() for c in a.running()}

                    await pool["a"].until(lambda _: runs(first))
                    before = {cid: gen for a in pool.values()
                              for cid, gen in a.running().items()}

                    os.kill(s1.pid, signal.SIGKILL)
                    await leader_is(election, "s2")
                    for agent in pool.values():
                        await agent.until(lambda a: a.scheduler == addresses[1])
                    second_spec = ContainerSpec(image="busybox", name="second")
                    reply = await ask(addresses[1], lambda r: SubmitJob(
                        spec=second_spec, replicas=6, reply=r))
                    assert isinstance(reply, Submitted) and len(reply.ids) == 6
                    everything = first | set(reply.ids)
                    await pool["a"].until(lambda _: runs(everything))

                    copies = Counter(c for a in pool.values() for c in a.running())
                    assert copies == Counter({cid: 1 for cid in everything})
                    # The workers kept their containers: same generations, no revokes.
                    after = {cid: gen for a in pool.values()
                             for cid, gen in a.running().items()}
                    assert {cid: after[cid] for cid in first} == before
                    assert all(not a.revoked for a in pool.values())
                    listed = await ask(addresses[1], lambda r: ListContainers(reply=r))
                    assert isinstance(listed, ContainerList)
                    assert {c.id for c in listed.containers} == everything
            finally:
                await procs.stop()

    run(body, 60.0)
