"""The embedded resolver on the real kernel: from inside containers on user-defined networks,
names, aliases and job names resolve (only on shared networks), others are forwarded to an
upstream resolver of the test's own, malformed packets leave it answering, names follow the
containers at once; connect/disconnect of a running container, prune; -P with a userland
proxy answering at 127.0.0.1 and by hairpin."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from protocol.errors import Conflict, NotFound
from protocol.specs import JOB_LABEL, ContainerSpec, NetworkSpec
from tests.helpers.network_engine import open_engine, upstream_resolver, with_engine
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver
from worker.network import links

pytestmark = pytest.mark.root

SERVE = "echo served-by-$(hostname) > /tmp/index.html; exec httpd -f -p 8000 -h /tmp"
OUTSIDE = ("outside.shoal-test", "192.0.2.77")


def busybox(*command: str, **fields: object) -> ContainerSpec:
    return ContainerSpec(image="busybox", command=list(command), **fields)  # type: ignore[arg-type]


async def run_detached(engine: Engine, spec: ContainerSpec) -> str:
    record = await engine.create(spec)
    await engine.start(record.id)
    return record.id


async def sh(engine: Engine, container: str, script: str) -> tuple[int, str]:
    result = await engine.exec(container, ["sh", "-c", script])
    return result.exit_code, result.output.decode(errors="replace")


async def lookup(engine: Engine, container: str, name: str) -> list[str]:
    """The addresses busybox nslookup prints for ``name`` inside ``container`` ([] if none)."""
    _, text = await sh(engine, container, f"nslookup -type=a {name}")
    after_name = text.split("Name:", 1)[1] if "Name:" in text else ""
    return re.findall(r"Address:?\s+(\d+\.\d+\.\d+\.\d+)\s*$", after_name, re.MULTILINE)


def ask_in_namespace(pid: int, packets: list[bytes]) -> list[bytes | None]:
    """Send each packet to 127.0.0.11:53 from inside the namespace of ``pid``; the replies
    (None where none came within a second)."""
    with links.in_namespace(pid):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    replies: list[bytes | None] = []
    with sock:
        sock.settimeout(1.0)
        sock.connect(("127.0.0.11", 53))
        for packet in packets:
            sock.send(packet)
            try:
                replies.append(sock.recv(4096))
            except TimeoutError:
                replies.append(None)
    return replies


def test_names_aliases_and_jobs_resolve_inside_containers(tmp_path: Path) -> None:
    with upstream_resolver(tmp_path, *OUTSIDE) as (resolv_conf, _):
        async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
            await driver.networks.create(NetworkSpec(name="front"))
            await driver.networks.create(NetworkSpec(name="back"))
            web = await run_detached(engine, busybox("sh", "-c", SERVE, name="web",
                                                     network="front", hostname="web",
                                                     network_aliases=["www"]))
            replicas = [await run_detached(engine, busybox(
                "sleep", "600", name=f"api.{n}", network="front", labels={JOB_LABEL: "api"}))
                for n in (1, 2)]
            await run_detached(engine, busybox("sleep", "600", name="db", network="back"))
            # A server of its own on 0.0.0.0:53 (the resolver's sockets are elsewhere).
            client = await run_detached(engine, busybox(
                "sh", "-c", "httpd -p 53 -h /tmp && exec sleep 600", name="client",
                network="front"))
            address = {r: engine.inspect(r).details["ip_address"] for r in [web, *replicas]}

            _, resolv = await sh(engine, client, "cat /etc/resolv.conf")
            assert "nameserver 127.0.0.11" in resolv and "ndots:0" in resolv
            assert await lookup(engine, client, "web") == [address[web]]
            assert await lookup(engine, client, "www") == [address[web]]
            assert sorted(await lookup(engine, client, "api")) == sorted(
                address[r] for r in replicas)
            assert await lookup(engine, client, "db") == []  # on another network only
            assert await lookup(engine, client, OUTSIDE[0]) == [OUTSIDE[1]]  # forwarded
            code, page = await sh(engine, client, "wget -qO- http://www:8000/")
            assert code == 0 and page.strip() == "served-by-web"
            # The default bridge keeps the host's resolvers, as in Docker.
            plain = await run_detached(engine, busybox("sleep", "600", network="bridge"))
            _, resolv = await sh(engine, plain, "cat /etc/resolv.conf")
            assert "127.0.0.11" not in resolv

            # Bytes that are no query: FORMERR, or nothing; the resolver answers on.
            pid = engine.inspect(client).state.pid
            good = dns.message.make_query("web", "A")
            replies = await asyncio.to_thread(ask_in_namespace, pid, [
                b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x09broken",
                b"\xff" * 700, good.to_wire()])
            assert replies[0] is not None
            assert dns.message.from_wire(replies[0]).rcode() == dns.rcode.FORMERR
            assert replies[2] is not None
            answer = dns.message.from_wire(replies[2])
            assert answer.id == good.id
            assert [r.address for rrset in answer.answer for r in rrset] == [address[web]]

            # Names follow the containers at once: a removed replica is gone, a new one in.
            await engine.remove(replicas[1], force=True)
            assert await lookup(engine, client, "api") == [address[replicas[0]]]
            third = await run_detached(engine, busybox(
                "sleep", "600", name="api.3", network="front", labels={JOB_LABEL: "api"}))
            assert sorted(await lookup(engine, client, "api")) == sorted(
                [address[replicas[0]], engine.inspect(third).details["ip_address"]])
            await engine.stop(web, timeout=0)
            assert await lookup(engine, client, "web") == []

        with_engine(tmp_path, body, resolv_conf=resolv_conf)


def test_a_silent_upstream_ends_in_servfail(tmp_path: Path) -> None:
    with upstream_resolver(tmp_path, *OUTSIDE) as (_, client_ns):
        silent = tmp_path / "silent-resolv.conf"
        # The namespace's host end answers nothing on port 53 (no server there).
        silent.write_text(f"nameserver {client_ns.host_ip}\n")

        async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
            await driver.networks.create(NetworkSpec(name="front"))
            client = await run_detached(engine, busybox("sleep", "600", network="front"))
            pid = engine.inspect(client).state.pid
            query = dns.message.make_query(OUTSIDE[0], "A")
            [reply] = await asyncio.to_thread(ask_in_namespace, pid, [query.to_wire()])
            # A refused port answers at once (ICMP), a dropped one after the timeout: either
            # way the asker hears SERVFAIL, with its own id.
            assert reply is not None
            parsed = dns.message.from_wire(reply)
            assert parsed.id == query.id and parsed.rcode() == dns.rcode.SERVFAIL

        with_engine(tmp_path, body, resolv_conf=silent)


def test_connect_disconnect_a_running_container_and_prune(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        networks = driver.networks
        await networks.create(NetworkSpec(name="front"))
        back = await networks.create(NetworkSpec(name="back"))
        await networks.create(NetworkSpec(name="spare"))
        db = await run_detached(engine, busybox("sleep", "600", name="db", network="back"))
        app = await run_detached(engine, busybox("sleep", "600", name="app", network="front",
                                                 hostname="app"))
        assert await lookup(engine, app, "db") == []
        wanted = str(list(ipaddress.IPv4Network(back.subnet).hosts())[20])
        await driver.connect(engine.find(app), "back", ip=wanted, aliases=["cache"])
        with pytest.raises(Conflict, match="already on network back"):
            await driver.connect(engine.find(app), "back")
        _, text = await sh(engine, app, "ip -4 -o addr show eth1; cat /etc/hosts")
        assert f"{wanted}/" in text and f"{wanted}\tapp" in text
        assert await lookup(engine, app, "db") == [engine.inspect(db).details["ip_address"]]
        assert await lookup(engine, db, "cache") == [wanted]
        code, _ = await sh(engine, db, f"ping -c 1 -W 2 {wanted}")
        assert code == 0
        assert {e.container_id for e in networks.inspect("back").endpoints} == {db, app}

        await driver.disconnect(engine.find(app), "back")
        _, text = await sh(engine, app, "ip -o link; cat /etc/hosts")
        assert "eth1" not in text and wanted not in text
        assert await lookup(engine, db, "cache") == []
        assert await lookup(engine, app, "db") == []
        with pytest.raises(NotFound, match="not on network back"):
            await driver.disconnect(engine.find(app), "back")
        assert await networks.prune() == ["spare"]
        await engine.remove(db, force=True)
        assert await networks.prune() == ["back"]
        assert sorted(n.spec.name for n in networks.listing()) == ["bridge", "front"]

    with_engine(tmp_path, body)


def test_publish_all_answers_at_loopback_and_by_hairpin(tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        front = await driver.networks.create(NetworkSpec(name="front"))
        web = await run_detached(engine, busybox("sh", "-c", SERVE, name="web", network="front",
                                                 hostname="web", expose=["8000"],
                                                 publish_all=True))
        [port] = engine.ps()[0].ports if engine.ps()[0].id == web else engine.ps()[1].ports
        assert port.container_port == 8000 and port.host_port > 0
        page = await asyncio.to_thread(_http_get, "127.0.0.1", port.host_port)
        assert page.strip() == "served-by-web"
        # From a container to its own host's published port (the host's address on its
        # bridge), and from the container behind the port itself.
        other = await run_detached(engine, busybox("sleep", "600", network="front"))
        for container in (other, web):
            code, text = await sh(engine, container,
                                  f"wget -qO- http://{front.gateway}:{port.host_port}/")
            assert code == 0 and text.strip() == "served-by-web", text

    with_engine(tmp_path, body)


def _http_get(host: str, port: int, deadline: float = 10.0) -> str:
    """The page at ``host:port``, asked until the server behind answers (its httpd may not
    listen yet: then the proxy closes the connection at once)."""
    give_up = time.monotonic() + deadline
    while True:
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        if b"\r\n\r\n" in data or time.monotonic() > give_up:
            return data.split(b"\r\n\r\n", 1)[-1].decode()
        time.sleep(0.05)


def test_a_restarted_worker_serves_the_names_of_running_containers_again(
        tmp_path: Path) -> None:
    async def body(engine: Engine, driver: NativeDriver, state: Path) -> None:
        await driver.networks.create(NetworkSpec(name="front"))
        web = await run_detached(engine, busybox("sleep", "600", name="web", network="front"))
        client = await run_detached(engine, busybox("sleep", "600", name="client",
                                                    network="front"))
        address = engine.inspect(web).details["ip_address"]
        # The worker goes (its sockets with it), the containers keep running.
        await engine.close()
        assert await lookup_by_socket(engine.inspect(client).state.pid, "web") is None
        again, driver2 = await open_engine(state)
        try:
            assert driver2.networks.resolver.serving(client)  # opened again as it opened
            assert await lookup(again, client, "web") == [address]
            await again.remove(web, force=True)
            assert await lookup(again, client, "web") == []
            await again.remove(client, force=True)
        finally:
            engine.records.clear()
            await again.close()

    with_engine(tmp_path, body)


async def lookup_by_socket(pid: int, name: str) -> list[str] | None:
    """The A answer for ``name`` from 127.0.0.11 in the namespace of ``pid``; None if no
    resolver answers there."""
    query = dns.message.make_query(name, "A")
    try:
        [reply] = await asyncio.to_thread(ask_in_namespace, pid, [query.to_wire()])
    except ConnectionRefusedError:
        return None
    if reply is None:
        return None
    return [r.address for rrset in dns.message.from_wire(reply).answer for r in rrset]
