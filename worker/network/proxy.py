"""The userland proxy of published ports, as Docker's docker-proxy: for what nftables' DNAT
cannot reach. A connection to 127.0.0.1:HOSTPORT on the host never passes a prerouting
hook, and a container that asks its own host's published port (hairpin) would get replies
from an address it did not ask; both land on a socket this proxy holds on the host port and
are relayed to the container's address from the host. Everything else is DNAT'ed before any
socket sees it.

TCP: a connection each way, relayed until either side ends; UDP: a connected socket to the
container per client address, forgotten after an idle time. Both bounded per port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import structlog

from protocol.specs import PortMapping

log = structlog.get_logger("shoal.worker.network.proxy")

MAX_TCP_CONNECTIONS = 1024  # per published port; more are refused (closed at once)
MAX_UDP_FLOWS = 1024  # per published port; datagrams of a new client beyond are dropped
UDP_IDLE = 30.0  # a UDP flow without traffic for this long is forgotten
CONNECT_TIMEOUT = 5.0
CHUNK = 64 * 1024


@dataclass(eq=False)
class _Published:
    """One published port's listener and the relays under way through it."""

    port: PortMapping
    target: tuple[str, int]
    closers: list[asyncio.AbstractServer | asyncio.DatagramTransport] = field(
        default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    connections: int = 0


class PortProxy:
    """Every running container's published ports, relayed from the host's sockets."""

    def __init__(self) -> None:
        self._by_container: dict[str, list[_Published]] = {}

    def proxied(self, container_id: str) -> list[PortMapping]:
        return [p.port for p in self._by_container.get(container_id, [])]

    async def start(self, container_id: str, ip: str, ports: list[PortMapping]) -> None:
        """Listen on each of ``ports`` (its host port, on its host address or all) and relay
        to ``ip``:container port. A port someone else holds is logged and left to DNAT."""
        await self.stop(container_id)
        started: list[_Published] = []
        for port in ports:
            published = _Published(port, (ip, port.container_port))
            try:
                if port.protocol == "tcp":
                    await self._listen_tcp(published)
                elif port.protocol == "udp":
                    await self._listen_udp(published)
                else:
                    continue
            except OSError as exc:
                log.warning("userland proxy not started: loopback and hairpin will not reach "
                            "this port", container_id=container_id, port=port.host_port,
                            protocol=port.protocol, error=str(exc))
                continue
            started.append(published)
        self._by_container[container_id] = started

    async def stop(self, container_id: str) -> None:
        for published in self._by_container.pop(container_id, []):
            for closer in published.closers:
                closer.close()
            for task in list(published.tasks):
                task.cancel()
            await asyncio.gather(*published.tasks, return_exceptions=True)

    async def close(self) -> None:
        for container_id in list(self._by_container):
            await self.stop(container_id)

    # --- TCP -----------------------------------------------------------------------------
    async def _listen_tcp(self, published: _Published) -> None:
        server = await asyncio.start_server(
            lambda r, w: self._relay_tcp(published, r, w),
            host=published.port.host_ip or "0.0.0.0", port=published.port.host_port,
            reuse_address=True, backlog=128)
        published.closers.append(server)

    async def _relay_tcp(self, published: _Published, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        if published.connections >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        published.connections += 1
        task = asyncio.current_task()
        if task is not None:
            published.tasks.add(task)
        inner: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                inner_reader, inner = await asyncio.open_connection(*published.target)
            await asyncio.gather(_pipe(reader, inner), _pipe(inner_reader, writer))
        except (OSError, TimeoutError):
            pass
        finally:
            published.connections -= 1
            if task is not None:
                published.tasks.discard(task)
            for end in (writer, inner):
                if end is not None:
                    end.close()

    # --- UDP -----------------------------------------------------------------------------
    async def _listen_udp(self, published: _Published) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpFront(published),
            local_addr=(published.port.host_ip or "0.0.0.0", published.port.host_port))
        published.closers.append(transport)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends, then pass the end on (a half close, as TCP allows)."""
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()
    except (OSError, RuntimeError):  # uvloop: RuntimeError once the other side closed it
        sink.close()


class _UdpFront(asyncio.DatagramProtocol):
    """The host port's socket: each client address gets a connected socket to the
    container, whose replies go back to that client from the host port."""

    def __init__(self, published: _Published) -> None:
        self.published = published
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[tuple[str, int], _UdpFlow] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        flow = self.flows.get(addr)
        if flow is None:
            self._forget_idle()
            if len(self.flows) >= MAX_UDP_FLOWS:
                return
            flow = _UdpFlow(self, addr)
            self.flows[addr] = flow
            task = asyncio.get_running_loop().create_task(flow.open())
            self.published.tasks.add(task)
            task.add_done_callback(self.published.tasks.discard)
        flow.send(data)

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for addr, flow in list(self.flows.items()):
            if now - flow.last > UDP_IDLE:
                flow.close()
                del self.flows[addr]

    def connection_lost(self, exc: Exception | None) -> None:
        for flow in self.flows.values():
            flow.close()
        self.flows.clear()


class _UdpFlow(asyncio.DatagramProtocol):
    def __init__(self, front: _UdpFront, client: tuple[str, int]) -> None:
        self.front = front
        self.client = client
        self.last = time.monotonic()
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: list[bytes] = []  # datagrams that came before the socket was open

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self, remote_addr=self.front.published.target)
            assert isinstance(transport, asyncio.DatagramTransport)
            self.transport = transport
            for data in self.waiting:
                transport.sendto(data)
            self.waiting.clear()

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        if self.transport is None:
            if len(self.waiting) < 64:
                self.waiting.append(data)
        else:
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last = time.monotonic()
        if self.front.transport is not None:
            self.front.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        pass  # the container's port is closed (ICMP): the client's own timeout tells it

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

