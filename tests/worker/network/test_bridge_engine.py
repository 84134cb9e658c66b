"""Bridge networks on the native driver, on the real kernel: containers on the default bridge
reach each other by address, a published port answers from another namespace at the host's
address, internal networks have no way out, and nothing is left behind after rm, after a
worker that went away without closing, and after teardown (veths, rules and bridges counted)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from protocol.errors import Conflict, InvalidSpec, Unsupported
from protocol.specs import ContainerSpec, NetworkAttachment, NetworkSpec, PortMapping
from tests.helpers.bounded_run import run
from tests.helpers.netns import client_namespace
from tests.helpers.requirements import missing
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.images.testimage import import_test_image
from worker.network import links, nat
from worker.teardown import tear_down_worker

pytestmark = pytest.mark.root

NFT = shutil.which("nft")
SERVE = "echo served-by-$(hostname) > /tmp/index.html; exec httpd -f -p 8000 -h /tmp"


def busybox(*command: str, **fields: object) -> ContainerSpec:
    return ContainerSpec(image="busybox", command=list(command), **fields)  # type: ignore[arg-type]


async def open_engine(state: Path) -> tuple[Engine, NativeDriver]:
    driver = await NativeDriver.open(state)
    if not driver.store.images():
        await asyncio.to_thread(import_test_image, driver.store)
    engine = Engine(state, driver, images=NativeImages(driver.store))
    await engine.open()
    return engine, driver


async def counts(driver: NativeDriver) -> tuple[int, int]:
    """(this worker's veths, its published-port rules)."""
    return await asyncio.to_thread(_counts, driver)


def _counts(driver: NativeDriver) -> tuple[int, int]:
    veths = links.links_named(f"v{driver.networks.scope}")
    published = [r for r in nat.rules(driver.networks.table) if r.get("chain") == "published"]
    return len(veths), len(published)


def with_engine(tmp_path: Path, body: Callable[[Engine, NativeDriver, Path], Awaitable[None]]
                ) -> None:
    if NFT is None:
        missing("nftables (nft)")
    state = tmp_path / "state"

    async def main() -> None:
        engine, driver = await open_engine(state)
        try:
            await body(engine, driver, state)
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()
            await tear_down_worker(state)
        # Teardown leaves none of the worker's links nor its table.
        assert await asyncio.to_thread(links.links_named, f"v{driver.networks.scope}") == []
        assert await asyncio.to_thread(links.links_named, f"b{driver.networks.scope}") == []
        assert await asyncio.to_thread(nat.rules, driver.networks.table) == []

    run(main, timeout=120)


async def output(engine: Engine, container_id: str) -> str:
    return "".join([e.data.decode() async for e in engine.logs(container_id)])


def test_containers_on_the_default_bridge_reach_each_other(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        server = await engine.create(busybox("sh", "-c", SERVE, network="bridge",
                                             hostname="web"))
        await engine.start(server.id)
        address = engine.inspect(server.id).details["ip_address"]
        client = await engine.create(busybox(
            "sh", "-c", f"for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://{address}:8000/ "
            "&& break; sleep 0.2; done; cat /etc/hosts /etc/hostname /etc/resolv.conf; "
            "ip route", network="bridge", hostname="cli", add_hosts=["db:10.9.9.9"],
            dns=["192.0.2.53"], dns_search=["example.test"]))
        await engine.start(client.id)
        assert (await engine.wait(client.id)).exit_code == 0
        text = await output(engine, client.id)
        assert "served-by-web" in text
        own = engine.inspect(client.id).details["ip_address"]
        assert own != address
        assert f"{own}\tcli" in text and "10.9.9.9\tdb" in text
        assert "nameserver 192.0.2.53" in text and "search example.test" in text
        assert "default via" in text
        assert (await counts(driver))[0] == 1  # the client's veth went with its namespace
        await engine.remove(client.id)
        await engine.remove(server.id, force=True)
        assert await counts(driver) == (0, 0)
        assert driver.networks.listing()[0].endpoints == []

    with_engine(tmp_path, body)


def test_published_port_answers_from_another_namespace(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        server = await engine.create(busybox("sh", "-c", SERVE, network="bridge",
                                             hostname="pub",
                                             ports=[PortMapping(container_port=8000)]))
        await engine.start(server.id)
        [port] = engine.ps()[0].ports
        assert port.host_port > 0 and port.container_port == 8000
        assert await counts(driver) == (1, 1)
        with client_namespace() as client:
            done = await asyncio.to_thread(client.run, "sh", "-c",
                                           f"for i in 1 2 3 4 5 6 7 8 9 10; do busybox wget "
                                           f"-qO- http://{client.host_ip}:{port.host_port}/ "
                                           "&& exit 0; sleep 0.2; done; exit 1")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "served-by-pub"
        # The same host port cannot be published twice.
        with pytest.raises(Conflict, match="already"):
            await engine.create(busybox("true", network="bridge", ports=[
                PortMapping(container_port=1, host_port=port.host_port)]))
        await engine.remove(server.id, force=True)
        assert await counts(driver) == (0, 0)

    with_engine(tmp_path, body)


def test_nothing_leaks_after_a_worker_that_went_away(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        server = await engine.create(busybox("sh", "-c", SERVE, network="bridge",
                                             ports=[PortMapping(container_port=8000)]))
        await engine.start(server.id)
        stale = await engine.create(busybox("true", network="bridge",
                                            ports=[PortMapping(container_port=9)]))
        assert await counts(driver) == (1, 2)
        # A container whose record is gone (lost with its state, say) holds nothing after
        # the next start; its endpoint, address and rule are released.
        shutil.rmtree(state / "containers" / stale.id)
        engine.records.pop(stale.id)
        # As after kill -9: nothing closed; a new worker opens the same state.
        again, driver2 = await open_engine(state)
        assert await counts(driver2) == (1, 1)  # the running container keeps its endpoint
        [bridge] = driver2.networks.listing()
        assert [e.container_id for e in bridge.endpoints] == [server.id]
        assert again.inspect(server.id).details["ip_address"]
        await again.remove(server.id, force=True)
        assert await counts(driver2) == (0, 0)
        engine.records.clear()
        await again.close()

    with_engine(tmp_path, body)


def test_user_networks_internal_and_in_use(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        networks = driver.networks
        info = await networks.create(NetworkSpec(name="back", internal=True))
        assert info.subnet and info.gateway
        with pytest.raises(Conflict, match="already exists"):
            await networks.create(NetworkSpec(name="back"))
        fixed = str(list(__import__("ipaddress").IPv4Network(info.subnet).hosts())[9])
        record = await engine.create(busybox("sh", "-c", "ip route; ip -4 -o addr show eth0",
                                             network="back", name="db", ip=fixed))
        with pytest.raises(Conflict, match="in use by db"):
            await networks.remove("back")
        await engine.start(record.id)
        await engine.wait(record.id)
        text = await output(engine, record.id)
        assert "default" not in text  # an internal network has no way out
        assert fixed in text
        with pytest.raises(InvalidSpec, match="no port can be published"):
            await engine.create(busybox("true", network="host",
                                        ports=[PortMapping(container_port=80)]))
        await engine.remove(record.id)
        await networks.remove("back")
        assert [n.spec.name for n in networks.listing()] == ["bridge"]
        rendered = (await asyncio.to_thread(
            subprocess.run, ["nft", "list", "table", "ip", networks.table],
            capture_output=True, text=True, check=True)).stdout
        assert "masquerade" in rendered  # the default bridge's NAT to the outside

    with_engine(tmp_path, body)


def test_a_cluster_network_is_made_with_its_first_container_and_goes_with_its_last(
        tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        spec = NetworkSpec(name="front", subnet="10.251.7.0/24")
        made = [await engine.create(busybox("true", network="front", network_spec=spec))
                for _ in range(2)]
        [front] = [n for n in driver.networks.listing() if n.spec.name == "front"]
        assert front.subnet == "10.251.7.0/24"
        assert sorted(e.ip for e in front.endpoints) == ["10.251.7.2", "10.251.7.3"]
        for record in made:
            await engine.remove(record.id)
        assert [n.spec.name for n in driver.networks.listing()] == ["bridge"]
        bridges = await asyncio.to_thread(links.links_named, f"b{driver.networks.scope}")
        assert len(bridges) == 1  # the default network's only

    with_engine(tmp_path, body)


def test_without_nftables_only_bridge_networks_are_refused(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    real_which = shutil.which
    monkeypatch.setattr(nat.shutil, "which",
                        lambda name: None if name == "nft" else real_which(name))

    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        alone = await engine.create(busybox("true"))
        await engine.start(alone.id)
        assert (await engine.wait(alone.id)).exit_code == 0
        with pytest.raises(Unsupported, match="Debian package nftables"):
            await engine.create(busybox("true", network="bridge"))

    with_engine(tmp_path, body)


def test_a_container_made_with_connected_networks_is_on_each_from_its_start(
        tmp_path: Path) -> None:
    """A scheduler's container connected to more networks (its spec's ``connected``, as a
    replacement elsewhere is made): eth1, eth2 there from the start, at the address the spec
    gives or the next free one, each in /etc/hosts; the networks go with it."""
    third = 100 + os.getpid() % 100  # this run's subnets only: other runs share the kernel
    front = NetworkSpec(name="front", subnet=f"10.252.{third}.0/25")
    back = NetworkSpec(name="back", subnet=f"10.252.{third}.128/25")

    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        record = await engine.create(busybox(
            "sh", "-c", "ip -4 -o addr; cat /etc/hosts", network="front", network_spec=front,
            connected=[NetworkAttachment(name="back", spec=back, ip=f"10.252.{third}.140"),
                       NetworkAttachment(name="bridge")]))
        await engine.start(record.id)
        await engine.wait(record.id)
        text = await output(engine, record.id)
        assert re.search(rf"eth0\s+inet 10\.252\.{third}\.2/25", text), text
        assert re.search(rf"eth1\s+inet 10\.252\.{third}\.140/25", text), text
        assert re.search(r"eth2\s+inet 172\.", text), text
        assert f"10.252.{third}.140\t" in text
        await engine.remove(record.id)
        assert [n.spec.name for n in driver.networks.listing()] == ["bridge"]
        assert await counts(driver) == (0, 0)

    with_engine(tmp_path, body)
