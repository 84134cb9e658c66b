"""``network connect``/``disconnect`` through a scheduler that reach the node before the node has
made the container (the test holds the node's create): the connect stands, and the container is
on the network once made; a disconnect meanwhile leaves no endpoint behind, even when the copy
being made was assigned with that network. A real scheduler and etcd in this process, a real
agent on the native driver (root), the node's network verbs on a listener of its own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import channels
from protocol.errors import Unsupported
from protocol.messages import (
    NETWORK_REQUESTS,
    ConnectNetwork,
    CreateContainer,
    CreateNetwork,
    DisconnectNetwork,
    Message,
    Ok,
    StartContainer,
)
from protocol.specs import ContainerSpec, NetworkAttachment, NetworkSpec
from scheduler.cluster.daemon import SchedulerDaemon
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.in_process_cluster import CHANNELS, ask, scheduler
from tests.helpers.network_engine import with_engine
from worker.agent.shell import Agent, host_node
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver
from worker.engine.records import EngineContainer
from worker.network import links
from worker.network.service import handle_network

pytestmark = pytest.mark.root


class HeldCreates:
    """The engine's create, held at its start until the test releases it."""

    def __init__(self, engine: Engine) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.spec: ContainerSpec | None = None  # what the node was asked to make
        real = engine.create

        async def create(spec: ContainerSpec, **options: object) -> EngineContainer:
            self.spec = spec
            self.entered.set()
            await self.release.wait()
            return await real(spec, **options)  # type: ignore[arg-type]

        engine.create = create  # type: ignore[method-assign]


class Reconnects:
    """The native driver's ``set_connected``, recorded: the agent's Reconnects carried out,
    each as the networks it put the container on."""

    def __init__(self, driver: NativeDriver) -> None:
        self.driver = driver
        self.done: list[list[str]] = []
        self.changed = asyncio.Condition()

    async def __call__(self, record: EngineContainer,
                       attachments: list[NetworkAttachment]) -> None:
        await self.driver.set_connected(record, attachments)
        async with self.changed:
            self.done.append([a.name for a in attachments])
            self.changed.notify_all()

    async def until(self, networks: list[str]) -> None:
        """Until a Reconnect to ``networks`` (the newest record's) has been carried out."""
        async with asyncio.timeout(30), self.changed:
            await self.changed.wait_for(lambda: networks in self.done)


@dataclass
class Node:
    engine: Engine
    driver: NativeDriver
    held: HeldCreates
    reconnects: Reconnects
    network: str  # a cluster bridge network of the test's own


@asynccontextmanager
async def node_of(s: SchedulerDaemon, engine: Engine, driver: NativeDriver
                  ) -> AsyncIterator[Node]:
    """A worker joined to ``s``: its agent, and its network verbs on a listener."""
    async def handle(message: Message) -> Message | None:
        if isinstance(message, NETWORK_REQUESTS):
            return await handle_network(driver, engine, message)
        raise Unsupported(type(message).__name__)

    listener = await channels.listen("tcp://127.0.0.1:0", CHANNELS)
    serving = asyncio.create_task(channels.serve(listener.receiver, handle))
    reconnects = Reconnects(driver)
    agent = Agent(engine, host_node("n1", listener.address, {}, engine), [s.address],
                  CHANNELS, on_networks=reconnects)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    network = f"ncb{os.urandom(3).hex()}"
    try:
        await asyncio.wait_for(agent.joined.wait(), 30)
        await ask(s.address, lambda r: CreateNetwork(spec=NetworkSpec(name=network), reply=r))
        yield Node(engine, driver, HeldCreates(engine), reconnects, network)
    finally:
        stop.set()
        await running
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await listener.close()


def on(node: Node, cid: str) -> list[str]:
    return node.driver.networks.networks_of(cid)


SLEEPER = ContainerSpec(image="busybox", command=["sleep", "600"], network="bridge")


def test_a_connect_before_the_create_takes_effect_when_the_container_is_made(
        tmp_path: Path, etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with node_of(s, engine, driver) as node:
                await ask(s.address, lambda r: CreateContainer(spec=SLEEPER, reply=r))
                [cid] = list(s.api.leader.containers)  # type: ignore[union-attr]
                await ask(s.address, lambda r: StartContainer(id=cid, reply=r))
                await asyncio.wait_for(node.held.entered.wait(), 30)
                assert cid not in engine.records  # the node is making it, held

                answer = await ask(s.address, lambda r: ConnectNetwork(
                    name=node.network, container=cid, aliases=["late"], reply=r))
                assert isinstance(answer, Ok)
                entry = s.api.leader.containers[cid]  # type: ignore[union-attr]
                assert [a.name for a in entry.record.spec.connected] == [node.network]

                node.held.release.set()
                await node.reconnects.until([node.network])
                assert sorted(on(node, cid)) == sorted(["bridge", node.network])
                [endpoint] = [e for e in driver.networks.state.read().endpoints_of(cid)
                              if e.network == node.network]
                assert (endpoint.aliases, endpoint.ifname) == (["late"], "eth1")
                await engine.remove(cid, force=True)

    with_engine(tmp_path, body)


def test_a_disconnect_racing_the_create_leaves_no_endpoint(
        tmp_path: Path, etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        async with scheduler(etcd, layout) as s:
            await s.leading.wait()
            async with node_of(s, engine, driver) as node:
                await ask(s.address, lambda r: CreateContainer(spec=SLEEPER, reply=r))
                [cid] = list(s.api.leader.containers)  # type: ignore[union-attr]
                # Connected while placed but not started (no Assign yet, so its node has not
                # made it): its Assign at the start names the network.
                await ask(s.address, lambda r: ConnectNetwork(name=node.network,
                                                              container=cid, reply=r))
                await ask(s.address, lambda r: StartContainer(id=cid, reply=r))
                await asyncio.wait_for(node.held.entered.wait(), 30)
                assert node.held.spec is not None
                assert [a.name for a in node.held.spec.connected] == [node.network]
                answer = await ask(s.address, lambda r: DisconnectNetwork(
                    name=node.network, container=cid, reply=r))
                assert isinstance(answer, Ok)

                node.held.release.set()
                await node.reconnects.until([])
                assert on(node, cid) == ["bridge"]
                veths = await asyncio.to_thread(links.links_named, f"v{driver.networks.scope}")
                assert len(veths) == 1
                assert node.network not in {n.spec.name for n in driver.networks.listing()}
                await engine.remove(cid, force=True)

    with_engine(tmp_path, body)
