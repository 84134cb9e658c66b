"""``network connect``/``disconnect`` through a scheduler (simulated agents whose nodes serve
their verbs on a listener of the test's, real etcd): a running job replica connected to a
second overlay gets a second address taken in etcd, its node is asked with the overlay's spec
and that address, the record keeps the connection (and ``network inspect`` and ``rm`` see it),
another node on that overlay is told the new endpoint; a node's refusal undoes the record;
a disconnect gives the address back and every node drops the endpoint; a reschedule takes
addresses on both overlays again; a stopped container only has its record changed."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import channels
from bench._simagent import SimAgent, sim_node
from protocol.errors import Conflict, NotFound, Unsupported
from protocol.messages import (
    ConnectNetwork,
    CreateNetwork,
    DisconnectNetwork,
    InspectNetwork,
    Message,
    NetworkInspected,
    Ok,
    RemoveNetwork,
    StopContainer,
    SubmitJob,
)
from protocol.specs import ContainerSpec, NetworkSpec, RestartPolicy
from scheduler.cluster.leader import Leader
from scheduler.store import ADDRESSES, EmbeddedEtcd, EtcdClient, Layout, Store
from tests.helpers.in_process_cluster import CHANNELS, ask, scheduler
from tests.helpers.store_fixtures import Runner

REFUSED = "ov3"  # the network the nodes refuse to join


class NodeVerbs:
    """A node's own listener: it takes network connects and disconnects, and remembers them."""

    def __init__(self) -> None:
        self.asked: list[Message] = []

    async def handle(self, message: Message) -> Message | None:
        if isinstance(message, ConnectNetwork | DisconnectNetwork):
            self.asked.append(msgspec.structs.replace(message, reply=None))
            if isinstance(message, ConnectNetwork) and message.name == REFUSED:
                raise Unsupported("this node cannot join ov3")
            return Ok()
        raise Unsupported(type(message).__name__)


class Node:
    """A simulated agent whose node serves its verbs on a listener (``verbs``)."""

    def __init__(self, name: str, scheduler_address: str) -> None:
        self.name = name
        self.scheduler_address = scheduler_address
        self.verbs = NodeVerbs()
        self.tasks: list[asyncio.Task[None]] = []
        self.agent: SimAgent | None = None
        self.listener: channels.Listener | None = None

    async def start(self) -> SimAgent:
        self.listener = await channels.listen("tcp://127.0.0.1:0", CHANNELS)
        self.tasks.append(asyncio.create_task(channels.serve(self.listener.receiver,
                                                             self.verbs.handle)))
        info = msgspec.structs.replace(sim_node(self.name), address=self.listener.address)
        self.agent = SimAgent(info, [self.scheduler_address], options=CHANNELS)
        self.tasks.append(asyncio.create_task(self.agent.run()))
        await self.agent.joined.wait()
        return self.agent

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.listener is not None:
            await self.listener.close()


def connected(leader: Leader, cid: str) -> tuple[list[str], dict[str, str]]:
    entry = leader.containers.get(cid)
    assert entry is not None
    return [a.name for a in entry.record.spec.connected], dict(entry.record.addresses)


async def claims(store: Store) -> dict[str, str]:
    """``network:ip`` → the container holding it."""
    return {r.id: r.value.container_id async for r in store.list(ADDRESSES)}


async def claims_of(leader: Leader, store: Store, cid: str, want: set[str]) -> set[str]:
    """The claims ``cid`` holds once they are ``want``: addresses are given back after the
    commit that lets go of them, so this waits a leader cycle at a time (at most 50)."""
    held: set[str] = set()
    for _ in range(50):
        held = {k for k, holder in (await claims(store)).items() if holder == cid}
        if held == want:
            break
        done = leader.cycles
        await leader.until(lambda ld, after=done: ld.cycles > after)  # type: ignore[misc]
    return held


def test_connect_and_disconnect_a_second_overlay_through_the_scheduler(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout) -> None:
    async def body() -> None:
        async with scheduler(etcd, layout) as s, EtcdClient([etcd.endpoint]) as client:
            store = Store(client, layout)
            await s.leading.wait()
            leader = s.api.leader
            assert leader is not None
            for name in ("ov1", "ov2", REFUSED):
                await ask(s.address, lambda r, n=name: CreateNetwork(  # type: ignore[misc]
                    spec=NetworkSpec(name=n, driver="overlay"), reply=r))
            nodes = {n: Node(n, s.address) for n in ("a", "b", "c")}
            try:
                await nodes["a"].start()
                b = await nodes["b"].start()
                on_a = nodes["a"].verbs
                web = ContainerSpec(image="busybox", name="web", network="ov1",
                                    constraints=["node.id!=b"],
                                    restart=RestartPolicy(name="always"))
                db = ContainerSpec(image="busybox", name="db", network="ov2",
                                   constraints=["node.id==b"])
                for spec in (web, db):
                    await ask(s.address, lambda r, x=spec: SubmitJob(  # type: ignore[misc]
                        spec=x, replicas=1, reply=r))
                await leader.until(lambda ld: all(
                    (e := ld.containers.get(c)) is not None and e.record.addresses
                    for c in ("web.1", "db.1")))
                assert leader.containers["web.1"].record.node_id == "a"

                answer = await ask(s.address, lambda r: ConnectNetwork(
                    name="ov2", container="web.1", aliases=["w"], reply=r))
                assert isinstance(answer, Ok)
                names, addresses = connected(leader, "web.1")
                assert names == ["ov2"] and set(addresses) == {"ov1", "ov2"}
                second = addresses["ov2"]
                assert second.startswith("10.0.1.") and second != connected(
                    leader, "db.1")[1]["ov2"]
                assert (await claims(store))[f"ov2:{second}"] == "web.1"
                [asked] = on_a.asked
                assert isinstance(asked, ConnectNetwork) and asked.spec is not None
                assert (asked.name, asked.container, asked.ip, asked.spec.vni,
                        asked.aliases) == ("ov2", "web.1", second, 4097, ["w"])
                # b holds db on ov2: it hears of web.1's endpoint there, with its alias.
                await b.until(lambda y: any(
                    e.container_id == "web.1" and e.network == "ov2" and e.ip == second
                    and e.aliases == ["w"] for e in y.overlay_endpoints))
                inspected = await ask(s.address, lambda r: InspectNetwork(name="ov2", reply=r))
                assert isinstance(inspected, NetworkInspected)
                assert {(e.container_id, e.ip) for e in inspected.info.endpoints} == {
                    ("web.1", second), ("db.1", connected(leader, "db.1")[1]["ov2"])}
                with pytest.raises(Conflict, match=r"in use by db\.1, web\.1"):
                    await ask(s.address, lambda r: RemoveNetwork(name="ov2", reply=r))
                with pytest.raises(Conflict, match="already on network ov2"):
                    await ask(s.address, lambda r: ConnectNetwork(
                        name="ov2", container="web.1", reply=r))

                # The node refuses: nothing of it stays in the record or in etcd.
                with pytest.raises(Unsupported, match="cannot join ov3"):
                    await ask(s.address, lambda r: ConnectNetwork(
                        name=REFUSED, container="web.1", reply=r))
                assert connected(leader, "web.1")[0] == ["ov2"]
                assert not [k for k in await claims(store) if k.startswith(f"{REFUSED}:")]

                # Node a is lost: web.1 moves to c with an address on both overlays again
                # (the old ones given back), and b hears of its new place on ov2.
                await nodes["c"].start()
                await nodes["a"].stop()
                await leader.until(lambda ld: ld.containers["web.1"].record.node_id == "c"
                                   and len(ld.containers["web.1"].record.addresses) == 2)
                names, addresses = connected(leader, "web.1")
                assert names == ["ov2"]
                want = {f"{n}:{ip}" for n, ip in addresses.items()}
                assert await claims_of(leader, store, "web.1", want) == want
                await b.until(lambda y: any(
                    e.container_id == "web.1" and e.network == "ov2"
                    and e.ip == addresses["ov2"] for e in y.overlay_endpoints))
                on_c = nodes["c"].verbs

                with pytest.raises(Unsupported, match="stays on it"):
                    await ask(s.address, lambda r: DisconnectNetwork(
                        name="ov1", container="web.1", reply=r))
                answer = await ask(s.address, lambda r: DisconnectNetwork(
                    name="ov2", container="web.1", reply=r))
                assert isinstance(answer, Ok)
                assert connected(leader, "web.1") == ([], {"ov1": addresses["ov1"]})
                [asked] = on_c.asked
                assert isinstance(asked, DisconnectNetwork) and asked.name == "ov2"
                await b.until(lambda y: not any(e.container_id == "web.1"
                                                for e in y.overlay_endpoints))
                want = {f"ov1:{addresses['ov1']}"}
                assert await claims_of(leader, store, "web.1", want) == want
                with pytest.raises(NotFound, match="not on network ov2"):
                    await ask(s.address, lambda r: DisconnectNetwork(
                        name="ov2", container="web.1", reply=r))

                # A node's own bridge network: its node asked, no address taken here.
                await ask(s.address, lambda r: ConnectNetwork(name="bridge", container="web.1",
                                                              reply=r))
                asked = on_c.asked[-1]
                assert isinstance(asked, ConnectNetwork)
                assert (asked.name, asked.spec, asked.ip) == ("bridge", None, "")
                assert connected(leader, "web.1") == (["bridge"], {"ov1": addresses["ov1"]})

                # A stopped container holds no node: its record changes, no node is asked.
                await ask(s.address, lambda r: StopContainer(id="db.1", reply=r))
                await ask(s.address, lambda r: ConnectNetwork(name="ov1", container="db.1",
                                                              reply=r))
                assert connected(leader, "db.1")[0] == ["ov1"]
                assert nodes["b"].verbs.asked == []
            finally:
                for each in nodes.values():
                    await each.stop()

    run(body, 60.0)
