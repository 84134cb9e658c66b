"""Container verbs the scheduler passes on to the worker that runs the container.

libswarm's aggregate: ``logs``, ``exec``, ``attach``, ``wait``, ``top``, ``restart``,
``pause``, ``unpause``, ``stats`` and the file verbs (``archive`` stat, get and put,
``export``) for a cluster container (and ``network connect``/``disconnect``, from
``networks``) go to its node's own listener (``NodeInfo.address``). The request travels on with
everything it carries (stdin byte streams are bridged by the channels layer); its reply comes
back through a relay owned here, so the scheduler knows when a forward is over and ends it the
moment either side goes away: a client that disconnects mid-``logs -f`` closes the relay, which
cancels the worker's stream, and nothing is left behind.

The cluster's container id is the worker's container id (the agent creates the engine container
with ``container_id=<cluster id>``, and a worker also finds a container by name), so the request
goes on unchanged but for its reply Sender. Connections are cached per node and dropped when the
node goes down, changes address, or the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import structlog

import channels
from channels import EndOfChannel, Receiver, Sender
from protocol.errors import ChannelError, ShoalError, Unavailable
from protocol.messages import (
    AttachContainer,
    ConnectNetwork,
    ContainerLogs,
    DisconnectNetwork,
    ExecContainer,
    ExportContainer,
    GetContainerArchive,
    Message,
    PauseContainer,
    PutContainerArchive,
    RestartContainer,
    StatContainerPath,
    StatsContainer,
    TopContainer,
    UnpauseContainer,
    WaitContainer,
)

log = structlog.get_logger("shoal.scheduler")

FORWARDED = (ContainerLogs, ExecContainer, AttachContainer, WaitContainer, TopContainer,
             RestartContainer, PauseContainer, UnpauseContainer, StatsContainer,
             StatContainerPath, GetContainerArchive, PutContainerArchive, ExportContainer)
Forwarded = (ContainerLogs | ExecContainer | AttachContainer | WaitContainer | TopContainer
             | RestartContainer | PauseContainer | UnpauseContainer | StatsContainer
             | StatContainerPath | GetContainerArchive | PutContainerArchive | ExportContainer
             | ConnectNetwork | DisconnectNetwork)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a container's verbs go: its node and the address that node serves on."""

    node_id: str
    address: str
    key: str = ""  # the worker's CURVE key (key text); "" for a worker run --insecure


class Forwarder:
    """Worker connections per node, and the relays of requests forwarded on them. With
    ``identity`` (the cluster's keypair) a worker that registered a key is dialed with CURVE."""

    def __init__(self, options: channels.ChannelOptions,
                 identity: Callable[[], channels.Keypair | None] = lambda: None) -> None:
        self.options = options
        self.identity = identity
        self._conns: dict[str, tuple[str, channels.Connection]] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        self._relays: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing: set[asyncio.Future[None]] = set()

    @property
    def active(self) -> int:
        """Forwarded requests still being relayed."""
        return len(self._relays)

    def nodes(self) -> set[str]:
        """Nodes with a cached connection."""
        return set(self._conns)

    async def idle(self) -> None:
        """Wait until no forwarded request is being relayed."""
        await self._idle.wait()

    async def forward(self, message: Forwarded, route: Route) -> None:
        """Send ``message`` to the worker at ``route``; its replies reach the caller's own reply
        Sender. Returns once the worker's answer has been relayed (or either side left)."""
        reply = message.reply
        if not isinstance(reply, Sender):
            raise ChannelError(f"{type(message).__name__}: reply must be a Sender")
        conn = await self._connection(route)
        relay_tx, relay_rx = channels.pipe(capacity=16)
        try:
            await conn.sender.send(msgspec.structs.replace(message, reply=relay_tx))
        except ShoalError as exc:
            relay_rx.close()
            self.drop(route.node_id)
            raise Unavailable(f"node {route.node_id} at {route.address} did not take the "
                              f"request: {exc}", details={"node_id": route.node_id}) from exc
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        self._idle.clear()
        try:
            await _relay(relay_rx, reply)
        finally:
            self._relays.discard(task)
            if not self._relays:
                self._idle.set()

    async def connection(self, route: Route) -> channels.Connection:
        """The cached connection to the worker at ``route`` (made if needed), for a caller
        that relays the answers itself (a cluster build)."""
        return await self._connection(route)

    async def ask(self, route: Route, make: Callable[[Sender], Message],
                  timeout: float = 60.0) -> Message:
        """One request to the worker at ``route`` and its one answer (the worker's refusal
        is raised as its own error)."""
        conn = await self._connection(route)
        return await channels.request(conn.sender, make, timeout=timeout)

    async def _connection(self, route: Route) -> channels.Connection:
        lock = self._connecting.setdefault(route.node_id, asyncio.Lock())
        async with lock:
            cached = self._conns.get(route.node_id)
            if cached is not None:
                address, conn = cached
                if address == route.address and conn.error is None:
                    return conn
                self.drop(route.node_id)
            try:
                conn = await channels.connect(route.address, self.options,
                                              self._security(route))
            except ShoalError as exc:
                raise Unavailable(f"node {route.node_id} cannot be reached at {route.address}: "
                                  f"{exc}", details={"node_id": route.node_id}) from exc
            self._conns[route.node_id] = (route.address, conn)
            log.debug("connected to a worker", node_id=route.node_id, address=route.address)
            return conn

    def _security(self, route: Route) -> channels.CurveClient | None:
        if not route.key:
            return None
        identity = self.identity()
        if identity is None:
            raise Unavailable(f"node {route.node_id} uses CURVE but this scheduler has no "
                              "cluster key", details={"node_id": route.node_id})
        return channels.CurveClient(channels.parse_key(route.key, "node key"), identity)

    def drop(self, node_id: str) -> None:
        """Forget the node's connection (it went down): relays on it fail with PeerLost."""
        cached = self._conns.pop(node_id, None)
        if cached is not None:
            log.info("dropping the connection to a worker", node_id=node_id,
                     address=cached[0])
            task = asyncio.ensure_future(cached[1].close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every connection; relays still running fail towards their callers."""
        for node_id in list(self._conns):
            self.drop(node_id)
        await asyncio.gather(*self._closing, return_exceptions=True)


async def _relay(source: Receiver, reply: Sender) -> None:
    """Pass the worker's replies to the caller until one side ends; end the other side too."""
    gone = asyncio.ensure_future(reply.wait_closed())
    try:
        while True:
            receive = asyncio.ensure_future(source.recv())
            await asyncio.wait({receive, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()  # the caller left: stop the worker's stream
                with contextlib.suppress(asyncio.CancelledError, ShoalError):
                    await receive
                return
            try:
                item = receive.result()
            except EndOfChannel:
                reply.close()
                return
            except ShoalError as exc:
                reply.abort(exc)
                return
            try:
                await reply.send(item)
            except ChannelError:
                return  # the caller left between two replies
    finally:
        gone.cancel()
        source.close()
