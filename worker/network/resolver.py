"""The embedded resolver at 127.0.0.11:53 in each container namespace on a user-defined
network, served by the worker process itself: no process per container.

A thread enters the container's network namespace, opens a UDP and a TCP socket on
127.0.0.11 there (ports the kernel picks, and a DNAT rule in the namespace's own nftables
table from port 53 to them, as Docker does, so the container may still serve DNS on
0.0.0.0:53 itself), and comes back (a socket stays in the namespace it was made in); the
worker's event loop serves them. Questions are decided by ``dns_answers`` from the shared
``NameTable``; the rest go to the upstream resolvers (the container's ``--dns``, or the
host's from the worker's resolv.conf) from the worker's own namespace, and their answer is
relayed. Each container's cost is bounded: forwarded questions in flight, TCP connections,
questions per connection, and an idle limit; a forward that gets no answer ends in SERVFAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from worker.network import links, nat
from worker.network.dns_answers import (
    MAX_TCP_ANSWERS,
    Forward,
    decide,
    error_reply,
    plausible_reply,
)
from worker.network.names import NameTable

log = structlog.get_logger("shoal.worker.network.resolver")

ADDRESS = "127.0.0.11"
DNS_PORT = 53  # the upstream resolvers'
SERVFAIL = 2
FORWARD_TIMEOUT = 2.0  # per upstream, as resolv.conf's default
MAX_UPSTREAMS = 3  # resolv.conf's MAXNS
MAX_FORWARDS = 64  # per container: questions waiting for an upstream; more are dropped
MAX_TCP_CONNECTIONS = 16  # per container
MAX_TCP_QUESTIONS = 100  # per connection
TCP_IDLE = 10.0


def host_resolvers(resolv_conf: Path) -> list[str]:
    """The ``nameserver`` lines of ``resolv_conf`` (the worker's own: loopback resolvers
    included, since questions are forwarded from the worker's namespace)."""
    try:
        text = resolv_conf.read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "nameserver":
            found.append(words[1])
    return found[:MAX_UPSTREAMS]


async def forward_udp(query: bytes, upstreams: Sequence[str],
                      timeout: float = FORWARD_TIMEOUT) -> bytes | None:
    """The first plausible answer from ``upstreams`` in turn (a connected socket each: only
    that server's datagrams arrive), or None."""
    loop = asyncio.get_running_loop()
    for server in upstreams[:MAX_UPSTREAMS]:
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, (server, DNS_PORT))
                await loop.sock_sendall(sock, query)
                async with asyncio.timeout(timeout):
                    while True:
                        reply = await loop.sock_recv(sock, 65535)
                        if plausible_reply(query, reply):
                            return reply
            except (OSError, TimeoutError):
                continue
    return None


async def forward_tcp(query: bytes, upstreams: Sequence[str],
                      timeout: float = FORWARD_TIMEOUT) -> bytes | None:
    for server in upstreams[:MAX_UPSTREAMS]:
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(server, DNS_PORT)
                writer.write(struct.pack("!H", len(query)) + query)
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await reader.readexactly(size)
                if plausible_reply(query, reply):
                    return reply
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            continue
        finally:
            if writer is not None:
                writer.close()
    return None


def _open_sockets(pid: int) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on 127.0.0.11 inside the network namespace of ``pid``, on ports
    the kernel chose, and the namespace's rule that sends port 53 there (nft run from this
    thread, so inside the namespace too)."""
    with links.in_namespace(pid):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((ADDRESS, 0))
            tcp.bind((ADDRESS, 0))
            tcp.listen(MAX_TCP_CONNECTIONS)
            udp.setblocking(False)
            tcp.setblocking(False)
            nat.apply(nat.resolver_redirect(ADDRESS, udp.getsockname()[1],
                                            tcp.getsockname()[1]))
        except BaseException:
            udp.close()
            tcp.close()
            raise
    return udp, tcp


@dataclass(eq=False)
class _ContainerServer:
    """One container's sockets and what is under way on them."""

    container_id: str
    upstreams: list[str]
    udp: asyncio.DatagramTransport | None = None
    tcp: asyncio.Server | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    connections: int = 0


class EmbeddedResolver:
    """Every container's resolver sockets, answering from ``table``."""

    def __init__(self, table: NameTable, resolv_conf: Path,
                 timeout: float = FORWARD_TIMEOUT) -> None:
        self.table = table
        self.resolv_conf = resolv_conf
        self.timeout = timeout
        self._servers: dict[str, _ContainerServer] = {}

    def serving(self, container_id: str) -> bool:
        return container_id in self._servers

    async def serve(self, container_id: str, pid: int, dns: Sequence[str] = ()) -> None:
        """Open the resolver in the namespace of ``pid`` (again after a worker restart);
        questions go upstream to ``dns`` or, if empty, to the host's resolvers."""
        await self.stop(container_id)
        udp, tcp = await asyncio.to_thread(_open_sockets, pid)
        server = _ContainerServer(container_id, list(dns))
        loop = asyncio.get_running_loop()
        try:
            server.udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpQuestions(self, server), sock=udp)
            server.tcp = await asyncio.start_server(
                lambda r, w: self._connection(server, r, w), sock=tcp)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        self._servers[container_id] = server

    async def stop(self, container_id: str) -> None:
        """Close the container's sockets (they hold its namespace alive) and its work."""
        server = self._servers.pop(container_id, None)
        if server is None:
            return
        if server.udp is not None:
            server.udp.close()
        if server.tcp is not None:
            server.tcp.close()
        for task in list(server.tasks):
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)

    async def close(self) -> None:
        for container_id in list(self._servers):
            await self.stop(container_id)

    def upstreams(self, server: _ContainerServer) -> list[str]:
        return server.upstreams or host_resolvers(self.resolv_conf)

    # --- UDP -----------------------------------------------------------------------------
    def datagram(self, server: _ContainerServer, data: bytes, peer: tuple[str, int]) -> None:
        networks = self.table.networks_of(server.container_id)
        try:
            decision = decide(data, self.table, networks)
        except Exception:  # a bug in a codec must never stop the worker: drop the question
            log.exception("resolver: a question could not be decided",
                          container_id=server.container_id)
            return
        if isinstance(decision, Forward):
            forwards = sum(1 for t in server.tasks if t.get_name() == "dns-forward")
            if forwards < MAX_FORWARDS:
                task = asyncio.get_running_loop().create_task(
                    self._forward_udp(server, decision.query, peer), name="dns-forward")
                server.tasks.add(task)
                task.add_done_callback(server.tasks.discard)
        elif decision is not None and server.udp is not None:
            server.udp.sendto(decision, peer)

    async def _forward_udp(self, server: _ContainerServer, query: bytes,
                           peer: tuple[str, int]) -> None:
        reply = await forward_udp(query, self.upstreams(server), self.timeout)
        if reply is None:
            reply = error_reply(query, SERVFAIL)
        if reply is not None and server.udp is not None and not server.udp.is_closing():
            server.udp.sendto(reply, peer)

    # --- TCP -----------------------------------------------------------------------------
    async def _connection(self, server: _ContainerServer, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if server.connections >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        server.connections += 1
        task = asyncio.current_task()
        if task is not None:
            server.tasks.add(task)
        try:
            for _ in range(MAX_TCP_QUESTIONS):
                async with asyncio.timeout(TCP_IDLE):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    query = await reader.readexactly(size)
                networks = self.table.networks_of(server.container_id)
                try:
                    decision = decide(query, self.table, networks,
                                      max_answers=MAX_TCP_ANSWERS)
                except Exception:  # as for UDP: never the worker's end
                    log.exception("resolver: a question could not be decided",
                                  container_id=server.container_id)
                    return
                if isinstance(decision, Forward):
                    decision = await forward_tcp(query, self.upstreams(server),
                                                 self.timeout) or error_reply(query, SERVFAIL)
                if decision is None:
                    return
                writer.write(struct.pack("!H", len(decision)) + decision)
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            server.connections -= 1
            if task is not None:
                server.tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _UdpQuestions(asyncio.DatagramProtocol):
    def __init__(self, resolver: EmbeddedResolver, server: _ContainerServer) -> None:
        self.resolver = resolver
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.resolver.datagram(self.server, data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier reply: the asker went away
