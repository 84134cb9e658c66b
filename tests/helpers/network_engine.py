"""An engine on the native driver with its own bridge networks, for the network tests: opened
on a state dir (with the test image), and torn down whole afterwards, checked to leave none of
the worker's links nor its nftables table; and a DNS server of the test's own, in a network
namespace of its own, for the resolvers to forward to (never the outside world)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.bounded_run import run
from tests.helpers.netns import Client, client_namespace
from tests.helpers.requirements import missing
from worker.engine.engine import Engine
from worker.engine.native_driver import NativeDriver, NativeImages
from worker.images.testimage import import_test_image
from worker.network import links, nat
from worker.network.files import HOST_RESOLV
from worker.teardown import tear_down_worker


async def open_engine(state: Path, resolv_conf: Path = HOST_RESOLV
                      ) -> tuple[Engine, NativeDriver]:
    driver = await NativeDriver.open(state, resolv_conf=resolv_conf)
    if not driver.store.images():
        await asyncio.to_thread(import_test_image, driver.store)
    engine = Engine(state, driver, images=NativeImages(driver.store))
    await engine.open()
    return engine, driver


def with_engine(tmp_path: Path, body: Callable[[Engine, NativeDriver, Path], Awaitable[None]],
                *, resolv_conf: Path = HOST_RESOLV, timeout: float = 120) -> None:
    """``body(engine, driver, state)`` on a fresh worker; everything removed and torn down
    after it, and checked gone."""
    if shutil.which("nft") is None:
        missing("nftables (nft)")
    state = tmp_path / "state"

    async def main() -> None:
        engine, driver = await open_engine(state, resolv_conf)
        try:
            await body(engine, driver, state)
        finally:
            for record in list(engine.records.values()):
                await engine.remove(record.id, force=True)
            await engine.close()
            await tear_down_worker(state)
        assert await asyncio.to_thread(links.links_named, f"v{driver.networks.scope}") == []
        assert await asyncio.to_thread(links.links_named, f"b{driver.networks.scope}") == []
        assert await asyncio.to_thread(nat.rules, driver.networks.table) == []

    run(main, timeout=timeout)


# A DNS server that knows one name (argv[2] -> argv[3]) and answers NXDOMAIN to the rest.
_UPSTREAM = """
import socket, sys
import dns.message, dns.rcode, dns.rrset
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    data, peer = sock.recvfrom(4096)
    try:
        query = dns.message.from_wire(data)
    except Exception:
        continue
    reply = dns.message.make_response(query)
    name = query.question[0].name
    if name.to_text(omit_final_dot=True) == sys.argv[2]:
        reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", sys.argv[3]))
    else:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    sock.sendto(reply.to_wire(), peer)
"""


@contextmanager
def upstream_resolver(tmp_path: Path, name: str, address: str) -> Iterator[tuple[Path, Client]]:
    """A resolver in a namespace of its own that answers ``name`` with ``address``; the
    resolv.conf that names it."""
    with client_namespace() as client:
        server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{client.name}", sys.executable, "-c", _UPSTREAM,
             client.client_ip, name, address], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
            resolv_conf = tmp_path / "upstream-resolv.conf"
            resolv_conf.write_text(f"nameserver {client.client_ip}\noptions timeout:1\n")
            yield resolv_conf, client
        finally:
            server.kill()
            server.wait()
