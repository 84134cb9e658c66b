"""Connections and listeners: sessions over a transport, with their liveness timers.

``await connect(address)`` gives a Connection whose ``sender`` reaches the listener's
``receiver``; every other channel travels inside messages. Transports are registered in one
place, ``channels._transport``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from channels._curve import INSECURE, LOCAL, CurveClient, CurveServer
from channels._endpoints import Inbox, Receiver, Sender, pipe
from channels._peer import PeerSession, SessionStats
from channels._transport import DialLink, ListenLink, split_address, transport_for
from protocol.codec import decode_header, encode_error, encode_header
from protocol.errors import (
    ConnectFailed,
    Forbidden,
    LimitExceeded,
    PeerLost,
    ProtocolError,
    ShoalError,
    Timeout,
)
from protocol.frames import Bye, Fail, Hello, SessionOptions
from protocol.limits import PeerBounds, SessionLimits
from protocol.messages import Message

log = structlog.get_logger("shoal.channels")


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """How an endpoint behaves. ``timeout``: silence after which a peer is declared lost (a
    peer's slower heartbeat stretches it up to ``bounds.max_silence``). ``max_peers``: sessions
    a listener keeps at once; when full, a new peer's Hello closes the session idle the longest
    among those with no request under way. ``limits`` are announced to peers; ``bounds`` are
    what a peer may cost this side whatever it announces."""

    name: str = ""
    heartbeat: float = 1.0
    timeout: float = 5.0
    connect_timeout: float = 10.0
    max_peers: int = 10_000
    limits: SessionLimits = field(default_factory=SessionLimits)
    bounds: PeerBounds = field(default_factory=PeerBounds)

    def session_options(self) -> SessionOptions:
        return SessionOptions(name=self.name, limits=self.limits, heartbeat=self.heartbeat)


class _Ticker:
    """Runs ``tick`` every ``interval`` seconds until stopped: heartbeats and silence checks."""

    def __init__(self, interval: float, tick: Callable[[], None]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(interval, tick))

    @staticmethod
    async def _run(interval: float, tick: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            tick()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _shut_down(sessions: list[PeerSession], ticker: _Ticker | None,
                     link: DialLink | ListenLink | None) -> None:
    """Say Bye on every session, end their pump tasks, stop the timer, release the socket."""
    for session in sessions:
        session.close()
    tasks = [task for session in sessions for task in session.tasks]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if ticker is not None:
        await ticker.stop()
    if link is not None:
        link.close()


class Connection:
    """A dialer's session with one listener."""

    def __init__(self, address: str, options: ChannelOptions,
                 security: CurveClient | None = None) -> None:
        self.address = address
        self.options = options
        self.security = security
        self._link: DialLink | None = None
        self._session: PeerSession | None = None
        self._ticker: _Ticker | None = None
        self._closed: asyncio.Future[ShoalError] = asyncio.get_running_loop().create_future()

    async def _open(self) -> None:
        transport = transport_for(self.address)
        link = await transport.dial(self.address, self._on_frame, self._on_broken,
                                    max_frame=self.options.limits.max_frame,
                                    security=self.security)
        self._link = link
        self._session = PeerSession(
            link, dialer=True, options=self.options.session_options(),
            timeout=self.options.timeout, on_end=self._on_end, peer_name=self.address,
            bounds=self.options.bounds,
        )
        self._ticker = _Ticker(min(self.options.heartbeat, self.options.timeout) / 2,
                               self._session.tick)
        try:
            await asyncio.wait_for(asyncio.shield(self._session.established),
                                   self.options.connect_timeout)
        except (TimeoutError, ShoalError) as exc:
            await self.close()
            if isinstance(exc, ProtocolError):
                raise  # e.g. VersionMismatch: the peer's own words
            raise ConnectFailed(f"no shoal session with {self.address}: "
                                f"{str(exc) or 'no answer within the connect timeout'}") from exc

    @property
    def sender(self) -> Sender:
        """Messages sent here arrive at the listener's ``receiver``."""
        if self._session is None or self._session.root is None:
            raise ConnectFailed("the connection is not established")
        return self._session.root

    @property
    def peer(self) -> SessionOptions | None:
        return self._session.core.peer if self._session else None

    @property
    def error(self) -> ShoalError | None:
        return self._session.error if self._session else None

    def _on_frame(self, parts: list[bytes]) -> None:
        if self._session is not None:
            self._session.feed(parts)

    def _on_broken(self, error: ShoalError) -> None:
        if self._session is not None:
            self._session.fail_transport(error)

    def _on_end(self, session: PeerSession, error: ShoalError) -> None:
        if not self._closed.done():
            self._closed.set_result(error)

    async def wait_closed(self) -> ShoalError:
        """Wait until the session ends; returns why."""
        return await asyncio.shield(self._closed)

    async def close(self) -> None:
        """End the session (Bye), stop timers and release the socket."""
        sessions = [self._session] if self._session is not None else []
        await _shut_down(sessions, self._ticker, self._link)
        self._ticker = None
        self._link = None

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _ListenerPeerLink:
    """One peer of a listener, as its PeerSession sees the transport."""

    __slots__ = ("_key", "_link")

    def __init__(self, link: ListenLink, key: bytes) -> None:
        self._link = link
        self._key = key

    def send(self, parts: list[bytes]) -> None:
        self._link.send(self._key, parts)

    def close(self) -> None:
        self._link.forget(self._key)


# How many of the longest-idle sessions a new peer's Hello looks at for one to close, when the
# listener is full: busy ones looked at go to the back, so the next Hello looks at others.
_EVICTION_SCAN = 64


@dataclass(frozen=True, slots=True)
class FromPeer:
    """A root message on a routed receiver (``Listener.route``), with the key of its sender
    (its CURVE key text) and the role that key holds."""

    peer: str
    role: str
    message: Message


class _RoutedInbox(Inbox):
    """One session's root channel into a shared receiver, naming the session's peer."""

    __slots__ = ("_peer", "_role", "_target")

    def __init__(self, target: Inbox, peer: str, role: str) -> None:
        super().__init__()
        self._target = target
        self._peer = peer
        self._role = role

    def push(self, item: object, size: int, grant: Callable[[int], None] | None = None) -> None:
        self._target.push(FromPeer(self._peer, self._role, item), size,  # type: ignore[arg-type]
                          grant)


class Listener:
    """Accepts sessions from many dialers; their root messages all arrive at ``receiver``,
    except those of roles given their own receiver with ``route``.

    With CURVE (``security``), a peer's role is what its key holds in the listener's
    ``Access``, checked on every frame: a key revoked (or given another role) ends its sessions
    at once. Without CURVE every peer is ``local`` (ipc and in-process: the socket file's
    permissions admit it) or ``insecure`` (tcp an operator opened without CURVE)."""

    def __init__(self, options: ChannelOptions, security: CurveServer | None = None) -> None:
        self.options = options
        self.security = security
        self._inbox = Inbox()
        self.receiver = Receiver(self._inbox)
        self._routes: dict[str, Inbox] = {}
        # Least recently heard from first: every frame moves its peer to the back.
        self.peers: collections.OrderedDict[bytes, PeerSession] = collections.OrderedDict()
        self._keys: dict[PeerSession, bytes] = {}  # the reverse of peers: O(1) teardown
        self._users: dict[PeerSession, tuple[str | None, str]] = {}  # (key text, role)
        self.stats = SessionStats()  # summed over every session it has served
        self._link: ListenLink | None = None
        self._ticker: _Ticker | None = None
        self._plain_role = LOCAL
        self.address = ""

    def route(self, role: str) -> Receiver:
        """A receiver of its own for the root messages of peers holding ``role``; each item is
        a ``FromPeer``. Call before peers arrive."""
        inbox = self._routes.setdefault(role, Inbox())
        return Receiver(inbox)

    async def _open(self, address: str) -> None:
        transport = transport_for(address)
        if self.security is None and split_address(address)[0] == "tcp":
            self._plain_role = INSECURE
        self._link = await transport.listen(address, self._on_frame, self._on_gone,
                                            max_frame=self.options.limits.max_frame,
                                            security=self.security)
        if self.security is not None:
            self.security.access.on_revoke.append(self._revoked)
        self.address = self._link.address
        self._ticker = _Ticker(min(self.options.heartbeat, self.options.timeout) / 2, self._tick)

    def _tick(self) -> None:
        for session in list(self.peers.values()):
            session.tick()

    def _role_of(self, user: str | None) -> str | None:
        if self.security is None:
            return self._plain_role
        return self.security.access.role(user) if user is not None else None

    def _on_frame(self, key: bytes, parts: list[bytes], user: str | None) -> None:
        session = self.peers.get(key)
        if session is not None:
            if self.security is not None and \
                    self._users.get(session) != (user, self._role_of(user)):
                session.close(Forbidden("this key is no longer admitted"))
                return
            self.peers.move_to_end(key)
            session.feed(parts)
            return
        assert self._link is not None
        role = self._role_of(user)
        if role is None:
            self._refuse(key, Forbidden("this key is not admitted"))
            return
        try:
            header = decode_header(parts[0])
        except ProtocolError as exc:
            self._refuse(key, exc)
            return
        if isinstance(header, Fail | Bye):
            return  # never answer a goodbye: two confused peers must not loop
        if not isinstance(header, Hello):
            self._refuse(key, PeerLost("no session with this peer: say Hello first"))
            return
        if len(self.peers) >= self.options.max_peers and not self._evict_idlest():
            self._refuse(key, LimitExceeded(f"this listener has {len(self.peers)} peers, "
                                            "the most it serves, all with requests under way"))
            return
        route = self._routes.get(role)
        root_inbox = (self._inbox if route is None
                      else _RoutedInbox(route, user or "", role))
        session = PeerSession(
            _ListenerPeerLink(self._link, key), dialer=False,
            options=self.options.session_options(), timeout=self.options.timeout,
            root_inbox=root_inbox, on_end=self._session_ended, peer_name=user or key.hex(),
            bounds=self.options.bounds, stats=self.stats,
        )
        self.peers[key] = session
        self._keys[session] = key
        self._users[session] = (user, role)
        session.feed(parts)

    def _revoked(self, user: str) -> None:
        """``user``'s key was revoked or re-roled: its sessions end now, not at their next
        frame."""
        for session, (session_user, _) in list(self._users.items()):
            if session_user == user:
                session.close(Forbidden("this key is no longer admitted"))

    def _evict_idlest(self) -> bool:
        """Close the session heard from the longest ago that has no request under way, so
        that a flood of silent peers cannot lock a new one out; False when none qualifies."""
        peers = self.peers
        for _ in range(min(len(peers), _EVICTION_SCAN)):
            key, session = next(iter(peers.items()))
            if not session.core.busy:
                log.debug("peer evicted", peer=session.peer_name, peers=len(peers))
                session.close(LimitExceeded(
                    "this listener is full and this session was the longest idle: closed for a "
                    "new peer"))
                return True
            peers.move_to_end(key)
        return False

    def _refuse(self, key: bytes, error: ShoalError) -> None:
        assert self._link is not None
        with contextlib.suppress(ShoalError):
            self._link.send(key, [encode_header(Fail()), encode_error(error.to_info())])

    def _on_gone(self, key: bytes, error: ShoalError) -> None:
        session = self.peers.get(key)
        if session is not None:
            session.fail_transport(error)

    def _session_ended(self, session: PeerSession, error: ShoalError) -> None:
        self._users.pop(session, None)
        key = self._keys.pop(session, None)
        if key is not None:
            if self.peers.get(key) is session:
                del self.peers[key]
            if self._link is not None:
                self._link.forget(key)
        log.debug("peer left", peer=session.peer_name, error=str(error))

    async def close(self) -> None:
        """Say Bye to every peer, stop timers, release the address; the receivers end."""
        if self.security is not None and self._revoked in self.security.access.on_revoke:
            self.security.access.on_revoke.remove(self._revoked)
        await _shut_down(list(self.peers.values()), self._ticker, self._link)
        self._ticker = None
        self._link = None
        self._inbox.end(None)  # the receiver ends cleanly: serve loops finish
        for inbox in self._routes.values():
            inbox.end(None)

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect(address: str, options: ChannelOptions | None = None,
                  security: CurveClient | None = None) -> Connection:
    """Open a session with the listener at ``address`` (with CURVE when ``security`` says)."""
    conn = Connection(address, options or ChannelOptions(), security)
    await conn._open()
    return conn


async def listen(address: str, options: ChannelOptions | None = None,
                 security: CurveServer | None = None) -> Listener:
    """Listen on ``address`` (``tcp://127.0.0.1:0`` picks a free port; see ``.address``),
    admitting only the keys of ``security.access`` when ``security`` is given."""
    listener = Listener(options or ChannelOptions(), security)
    await listener._open(address)
    return listener


async def request(
    sender: Sender, make: Callable[[Sender], Message], *, timeout: float | None = None
) -> Message:
    """Send the request ``make(reply_sender)`` and return the single reply.

    A refusal arrives as the ShoalError subclass the service raised.
    """
    reply_tx, reply_rx = pipe(capacity=4)
    await sender.send(make(reply_tx))
    try:
        if timeout is None:
            return await reply_rx.recv()
        try:
            return await asyncio.wait_for(reply_rx.recv(), timeout)
        except TimeoutError:
            raise Timeout(f"no reply within {timeout:g} s") from None
    finally:
        reply_rx.close()
