"""Who may ask a CURVE scheduler what: a join token's key only enrolls, a worker's key joins as
its own node and fetches images, a client's key does the rest; rotating a token and removing a
node cut what they admitted. In-process scheduler, real etcd, real ZeroMQ."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import channels
from bench._simagent import SimAgent, sim_node
from channels import CurveClient, Keypair, key_text
from channels._curve import parse_token, token_keypair
from protocol.errors import Conflict, ConnectFailed, Forbidden, InvalidArgument
from protocol.messages import (
    ContainerList,
    Enroll,
    Enrolled,
    GetJoinToken,
    Join,
    JoinToken,
    ListContainers,
    Message,
    RemoveNode,
    SubmitJob,
)
from protocol.specs import ContainerSpec
from scheduler.cluster.daemon import SchedulerDaemon
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import CHANNELS, ask, scheduler
from tests.helpers.store_fixtures import Runner


async def token(s: SchedulerDaemon, role: str) -> str:
    assert s.ipc_address == ""  # in-process: the test asks its api directly
    answer = await s.api.handle(GetJoinToken(role=role, reply=channels.pipe()[0]))
    assert isinstance(answer, JoinToken)
    return answer.token


async def enroll(s: SchedulerDaemon, issued: str, name: str) -> CurveClient:
    """Enroll a fresh key with ``issued``; the keys to dial the scheduler with."""
    cluster_key, secret = parse_token(issued)
    keys = Keypair.generate()
    answer = await ask(s.address, lambda r: Enroll(key=key_text(keys.public), name=name,
                                                   reply=r),
                       CurveClient(cluster_key, token_keypair(secret)))
    assert isinstance(answer, Enrolled) and answer.managers == [s.address]
    return CurveClient(cluster_key, keys)


def join(node_id: str) -> Message:
    return Join(node=sim_node(node_id), commands=channels.pipe()[0], reply=channels.pipe()[0])


def test_each_key_may_do_what_its_role_allows(run: Runner[None], etcd: EmbeddedEtcd,
                                              layout: Layout) -> None:
    spec = ContainerSpec(image="busybox", name="x")

    async def body() -> None:
        async with scheduler(etcd, layout, secure=True) as s:
            await s.leading.wait()
            worker_token, client_token = await token(s, "worker"), await token(s, "client")
            with pytest.raises(InvalidArgument, match="no manager token"):
                await token(s, "manager")
            # A token's key enrolls, and does nothing else.
            cluster_key, secret = parse_token(worker_token)
            holder = CurveClient(cluster_key, token_keypair(secret))
            with pytest.raises(Forbidden, match="may only enroll"):
                await ask(s.address, lambda r: ListContainers(reply=r), holder)
            w1 = await enroll(s, worker_token, "w1")
            person = await enroll(s, client_token, "ann")
            # The same node name with another key: refused (a token holder cannot take
            # over an enrolled node).
            with pytest.raises(Conflict, match="enrolled with another key"):
                await enroll(s, worker_token, "w1")
            # A worker's key: no submissions, no reading the cluster, no joining as another.
            with pytest.raises(Forbidden):
                await ask(s.address, lambda r: SubmitJob(spec=spec, reply=r), w1)
            with pytest.raises(Forbidden):
                await ask(s.address, lambda r: ListContainers(reply=r), w1)
            with pytest.raises(Forbidden, match="enrolled as node 'w1'"):
                await ask(s.address, lambda r: msgspec.structs.replace(
                    join("w2"), reply=r), w1)  # type: ignore[arg-type]
            # A client's key: the verbs, but no joining.
            listed = await ask(s.address, lambda r: ListContainers(reply=r), person)
            assert isinstance(listed, ContainerList)
            with pytest.raises(Forbidden, match="client key cannot join"):
                await ask(s.address, lambda r: msgspec.structs.replace(
                    join("ann"), reply=r), person)  # type: ignore[arg-type]
            # No key at all.
            with pytest.raises(ConnectFailed):
                await ask(s.address, lambda r: ListContainers(reply=r))
            # A rotated token enrolls no one; the keys it enrolled stay.
            rotated = await s.api.handle(GetJoinToken(role="worker", rotate=True,
                                                      reply=channels.pipe()[0]))
            assert isinstance(rotated, JoinToken) and rotated.token != worker_token
            with pytest.raises(ConnectFailed, match="refused this client's key"):
                await enroll(s, worker_token, "w3")
            await enroll(s, rotated.token, "w3")
            # The worker's key joins as its node; removing the node revokes the key.
            agent = SimAgent(sim_node("w1"), [s.address], options=CHANNELS)
            agent.security = w1
            running = asyncio.create_task(agent.run())
            try:
                await agent.joined.wait()
                await s.api.handle(RemoveNode(node_id="w1", force=True,
                                              reply=channels.pipe()[0]))
                with pytest.raises(ConnectFailed, match="refused this client's key"):
                    await ask(s.address, lambda r: ListContainers(reply=r), w1)
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

    run(body)
