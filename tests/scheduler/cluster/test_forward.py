"""Verbs the scheduler forwards to a real worker process: logs -f, exec, top, wait, a client
that vanishes mid-follow, and the refusals when there is nowhere to forward to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import channels
from bench._simagent import SimAgent, sim_node
from protocol.errors import NotFound, Unavailable
from protocol.messages import (
    ContainerCreated,
    ContainerExited,
    ContainerLogs,
    ContainerProcesses,
    CreateContainer,
    ExecContainer,
    ExecExited,
    ExecStarted,
    LogLine,
    Ok,
    StartContainer,
    SubmitJob,
    Submitted,
    TopContainer,
    WaitContainer,
)
from protocol.specs import ContainerSpec
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import CHANNELS, ask, scheduler
from tests.helpers.store_fixtures import Runner
from tests.helpers.worker_process import Worker


@pytest.fixture
def worker_address(tmp_path: Path) -> Iterator[str]:
    """A real ``shoal worker`` process (process driver), killed at the end. --insecure, as the
    in-process scheduler that forwards to it (its CURVE side is tested with real daemons)."""
    node = Worker(tmp_path / "worker", "process", args=("--insecure",))
    node.start()  # returns once it says it is ready (--ready-fd)
    try:
        yield node.address
    finally:
        node.kill()


async def run_as_agent(worker: str, cid: str, spec: ContainerSpec) -> None:
    """What the worker agent does with an Assign: create the engine container for the
    cluster's id (here by name, which the worker resolves like an id) and start it. The
    placement rules were the scheduler's to honour: a worker asked directly refuses them."""
    created = await ask(worker, lambda r: CreateContainer(
        spec=msgspec.structs.replace(spec, name=cid, constraints=[], affinities=[]), reply=r))
    assert isinstance(created, ContainerCreated)
    assert isinstance(await ask(worker, lambda r: StartContainer(id=cid, reply=r)), Ok)


async def next_line(logs: channels.Receiver) -> bytes:
    line = await logs.recv()
    assert isinstance(line, LogLine)
    return line.data


def test_logs_exec_top_wait_through_the_scheduler(run: Runner[None], etcd: EmbeddedEtcd,
                                                  layout: Layout, worker_address: str,
                                                  tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = (f"echo ready; while [ ! -e {gate} ]; do sleep 0.02; done; echo done; exit 3")
    spec = ContainerSpec(image="busybox", name="loop", command=["sh", "-c", script],
                         constraints=["node.labels.kind==real"])

    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            real = SimAgent(msgspec.structs.replace(
                sim_node("w1", labels={"kind": "real"}), address=worker_address),
                [s.address], options=CHANNELS)
            bare = SimAgent(sim_node("bare", labels={"kind": "sim"}), [s.address],
                            options=CHANNELS)
            tasks = [asyncio.create_task(a.run()) for a in (real, bare)]
            try:
                await real.joined.wait()
                await bare.joined.wait()
                submitted = await ask(s.address, lambda r: SubmitJob(spec=spec, reply=r))
                assert isinstance(submitted, Submitted) and submitted.ids == ["loop.1"]
                await real.until(lambda a: "loop.1" in a.running())
                await run_as_agent(worker_address, "loop.1", spec)

                async with await channels.connect(s.address, CHANNELS) as client:
                    # logs -f: the worker's stream, relayed by the scheduler.
                    logs_tx, logs = channels.pipe()
                    await client.sender.send(ContainerLogs(id="loop.1", follow=True,
                                                           reply=logs_tx))
                    assert await next_line(logs) == b"ready\n"

                    # exec: the reply carries a byte stream from the worker.
                    exec_tx, exec_rx = channels.pipe()
                    await client.sender.send(ExecContainer(
                        id="loop.1", command=["sh", "-c", "echo from-exec; exit 5"],
                        reply=exec_tx))
                    started = await exec_rx.recv()
                    assert isinstance(started, ExecStarted)
                    assert isinstance(started.stdout, channels.ByteReader)
                    assert await started.stdout.read_all() == b"from-exec\n"
                    exited = await exec_rx.recv()
                    assert isinstance(exited, ExecExited) and exited.exit_code == 5

                    top = await channels.request(client.sender,
                                                 lambda r: TopContainer(id="loop.1", reply=r))
                    assert isinstance(top, ContainerProcesses) and top.processes

                    # wait: answered when the container exits on its worker.
                    waiting = asyncio.ensure_future(channels.request(
                        client.sender, lambda r: WaitContainer(id="loop.1", reply=r)))
                    gate.touch()
                    result = await waiting
                    assert isinstance(result, ContainerExited) and result.exit_code == 3
                    assert await next_line(logs) == b"done\n"
                    with pytest.raises(channels.EndOfChannel):
                        await logs.recv()  # the follow ends with the container
                await asyncio.wait_for(s.api.forwarder.idle(), 10)
                assert s.api.forwarder.nodes() == {"w1"}  # one cached connection

                with pytest.raises(NotFound):
                    await ask(s.address, lambda r: ContainerLogs(id="ghost", reply=r))
                other = msgspec.structs.replace(spec, name="elsewhere",
                                                constraints=["node.labels.kind==sim"])
                assert isinstance(await ask(s.address, lambda r: SubmitJob(
                    spec=other, reply=r)), Submitted)
                await bare.until(lambda a: "elsewhere.1" in a.running())
                with pytest.raises(Unavailable, match="serves no container verbs"):
                    await ask(s.address, lambda r: ContainerLogs(id="elsewhere.1", reply=r))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    run(body)


def test_a_client_leaving_mid_follow_leaves_nothing_behind(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout, worker_address: str,
        tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = f"echo ready; while [ ! -e {gate} ]; do sleep 0.02; done"
    spec = ContainerSpec(image="busybox", name="quiet", command=["sh", "-c", script])

    async def body() -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            real = SimAgent(msgspec.structs.replace(sim_node("w1"), address=worker_address),
                            [s.address], options=CHANNELS)
            task = asyncio.create_task(real.run())
            try:
                await real.joined.wait()
                assert isinstance(await ask(s.address, lambda r: SubmitJob(spec=spec, reply=r)),
                                  Submitted)
                await real.until(lambda a: "quiet.1" in a.running())
                await run_as_agent(worker_address, "quiet.1", spec)
                for _ in range(3):  # each client follows, reads a line, and vanishes
                    client = await channels.connect(s.address, CHANNELS)
                    logs_tx, logs = channels.pipe()
                    await client.sender.send(ContainerLogs(id="quiet.1", follow=True,
                                                           reply=logs_tx))
                    assert await next_line(logs) == b"ready\n"
                    assert s.api.forwarder.active == 1
                    await client.close()
                    # The relay ends (and cancels the worker's stream) once the scheduler
                    # learns the client is gone; nothing stays behind for it.
                    await asyncio.wait_for(s.api.forwarder.idle(), 10)
                    assert s.api.forwarder.active == 0
                # The worker still serves the scheduler's cached connection.
                top = await ask(s.address, lambda r: TopContainer(id="quiet.1", reply=r))
                assert isinstance(top, ContainerProcesses)
                gate.touch()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    run(body)
