"""Bad input: typed errors and a log line; the scheduler keeps serving everyone else."""

from __future__ import annotations

import pytest

import channels
from bench._simagent import sim_node
from protocol.errors import Conflict, InvalidArgument, NotFound, Unsupported
from protocol.messages import (
    Assign,
    ContainerLogs,
    ContainerReport,
    Heartbeat,
    Join,
    Joined,
    ListImages,
    ListNodes,
    NodeImages,
    NodeList,
    Ok,
    StartContainer,
    SubmitJob,
    Submitted,
)
from protocol.observed import ContainerState
from protocol.specs import ContainerSpec
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import CHANNELS, agents, ask, scheduler
from tests.helpers.store_fixtures import Runner


def test_a_worker_claiming_a_live_node_id_is_refused(run: Runner[None], etcd: EmbeddedEtcd,
                                                     layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a"]) as pool:
                commands, _ = channels.pipe()
                with pytest.raises(Conflict, match="in use by a live worker session"):
                    await ask(s.address, lambda r: Join(node=sim_node("a"), commands=commands,
                                                        reply=r))
                with pytest.raises(InvalidArgument):
                    await ask(s.address, lambda r: Join(node=sim_node("a/b"),
                                                        commands=channels.pipe()[0], reply=r))
                held = [ContainerReport(node_id="zz", container_id="x", generation=1,
                                        state=ContainerState(status="running"))]
                with pytest.raises(Conflict, match="names node zz"):
                    await ask(s.address, lambda r: Join(node=sim_node("new"), held=held,
                                                        commands=channels.pipe()[0], reply=r))
                leader = s.api.leader
                assert leader is not None and leader.sessions["a"].epoch == pool["a"].epoch
                spec = ContainerSpec(image="busybox", name="still")
                await ask(s.address, lambda r: SubmitJob(spec=spec, reply=r))
                await pool["a"].until(lambda a: "still.1" in a.running())

    run(body)


def test_nonsense_on_a_reports_channel_is_refused_or_ignored(run: Runner[None],
                                                             etcd: EmbeddedEtcd,
                                                             layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            leader = s.api.leader
            assert leader is not None
            async with agents([s.address], ["good"]) as pool, \
                    await channels.connect(s.address, CHANNELS) as conn:
                commands, _ = channels.pipe()
                joined = await channels.request(conn.sender, lambda r: Join(
                    node=sim_node("odd"), commands=commands, reply=r))
                assert isinstance(joined, Joined)
                reports = joined.reports
                assert isinstance(reports, channels.Sender)
                with pytest.raises(InvalidArgument, match="node odd"):
                    await channels.request(reports, lambda r: Heartbeat(
                        node_id="good", epoch=joined.epoch, reply=r))
                # Not a report at all, and a report naming another node: logged, ignored.
                await reports.send(Assign(container_id="x", generation=1,
                                          spec=ContainerSpec(image="busybox")))
                await reports.send(ContainerReport(node_id="good", container_id="y",
                                                   generation=9,
                                                   state=ContainerState(status="running")))
                # Images for another node or an old epoch: ignored; for itself: recorded.
                await reports.send(NodeImages(node_id="good", epoch=joined.epoch,
                                              images=["stolen:1"]))
                await reports.send(NodeImages(node_id="odd", epoch=joined.epoch + 1,
                                              images=["future:1"]))
                await reports.send(NodeImages(node_id="odd", epoch=joined.epoch,
                                              images=["busybox:latest"]))
                await leader.until(
                    lambda ld: ld.nodes["odd"].record.info.images == ["busybox:latest"])
                assert leader.nodes["good"].record.info.images == []
                assert await channels.request(reports, lambda r: Heartbeat(
                    node_id="odd", epoch=joined.epoch, reply=r)) == Ok()
                assert "y" not in leader.holders
                assert leader.sessions["odd"].alive
                spec = ContainerSpec(image="busybox", name="fine",
                                     constraints=["node.id==good"])
                reply = await ask(s.address, lambda r: SubmitJob(spec=spec, reply=r))
                assert isinstance(reply, Submitted) and reply.ids == ["fine.1"]
                await pool["good"].until(lambda a: "fine.1" in a.running())

    run(body)


def test_bad_requests_and_vanishing_clients(run: Runner[None], etcd: EmbeddedEtcd,
                                            layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with agents([s.address], ["a"]) as pool:
                with pytest.raises(NotFound):
                    await ask(s.address, lambda r: StartContainer(id="ghost", reply=r))
                with pytest.raises(InvalidArgument):
                    await ask(s.address, lambda r: StartContainer(id="a/../b", reply=r))
                with pytest.raises(NotFound):  # forwarded verbs: no such container to forward
                    await ask(s.address, lambda r: ContainerLogs(id="x", reply=r))
                with pytest.raises(Unsupported):
                    await ask(s.address, lambda r: ListImages(reply=r))
                bad_rule = ContainerSpec(image="busybox", name="bad",
                                         constraints=["node.labels.zone=~=("])
                with pytest.raises(InvalidArgument):
                    await ask(s.address, lambda r: SubmitJob(spec=bad_rule, reply=r))
                # A client that sends a request and vanishes before the answer.
                conn = await channels.connect(s.address, CHANNELS)
                reply_tx, reply_rx = channels.pipe()
                spec = ContainerSpec(image="busybox", name="orphan-request")
                await conn.sender.send(SubmitJob(spec=spec, replicas=3, reply=reply_tx))
                await conn.close()
                reply_rx.close()
                nodes = await ask(s.address, lambda r: ListNodes(reply=r))
                assert isinstance(nodes, NodeList) and [n.id for n in nodes.nodes] == ["a"]
                await pool["a"].until(lambda a: {"orphan-request.1", "orphan-request.2",
                                                  "orphan-request.3"} <= set(a.running()))

    run(body)
