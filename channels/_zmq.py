"""ZeroMQ transports, ``tcp://`` and ``ipc://``: a ROUTER listens, a DEALER dials.

The sockets are plain (non-asyncio) pyzmq sockets whose notification fd is watched by the event
loop; every wake-up drains the socket in a batch, so a busy peer costs one loop callback per
batch rather than one await per message. Sends never block: high-water marks are off because
the session core already bounds what is queued for one peer in bytes (credit per channel, and
the session's send budget: ``PeerBounds``), which a count of messages could not; a ROUTER
refuses (rather than drops) frames for a peer it no longer knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable

import zmq

from channels._curve import CurveClient, CurveServer
from channels._transport import (
    DialLink,
    ListenLink,
    OnBroken,
    OnFrame,
    OnListenFrame,
    OnPeerGone,
    Security,
    Transport,
    split_address,
)
from protocol.errors import AddressError, ConnectFailed, PeerLost

_BATCH = 2048  # frames handled per wake-up before yielding to other callbacks
_LINGER_MS = 200  # a Bye queued just before close still gets out
_context: zmq.Context[zmq.Socket[bytes]] | None = None
open_sockets: set[zmq.Socket[bytes]] = set()


def context() -> zmq.Context[zmq.Socket[bytes]]:
    global _context
    if _context is None:
        _context = zmq.Context()
        # libzmq's default is 1,023 sockets per context; a CURVE dial takes three (the DEALER,
        # its monitor's two ends), so a scheduler forwarding to 350 workers, or a process of
        # 350 simulated agents, would run out. The open-files limit is the real bound.
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = soft if soft != resource.RLIM_INFINITY else 1 << 16
        _context.set(zmq.MAX_SOCKETS, max(1024, min(wanted, 1 << 16)))
    return _context


class Watched:
    """A zmq socket whose readiness is watched by the running loop."""

    def __init__(self, kind: int, max_frame: int,
                 sock: zmq.Socket[bytes] | None = None) -> None:
        self.sock: zmq.Socket[bytes] = sock if sock is not None else context().socket(kind)
        open_sockets.add(self.sock)
        self.sock.setsockopt(zmq.LINGER, _LINGER_MS)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        # A peer sending a frame larger than this is disconnected by zmq itself.
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_frame + 4096)
        self.loop = asyncio.get_running_loop()
        fd = self.sock.getsockopt(zmq.FD)
        assert isinstance(fd, int)
        self._fd = fd
        self._scheduled = False
        self.closed = False
        self.copy = True  # frames as bytes; False: as zmq Frames (with their metadata)

    def watch(self) -> None:
        self.loop.add_reader(self._fd, self._on_ready)
        self._schedule()

    def _schedule(self) -> None:
        # zmq's fd is edge-triggered and any send may consume the edge: look again soon.
        if not self._scheduled and not self.closed:
            self._scheduled = True
            self.loop.call_soon(self._on_ready)

    def _on_ready(self) -> None:
        self._scheduled = False
        if self.closed:
            return
        recv = self.sock.recv_multipart
        handle = self.handle
        copy = self.copy
        try:
            for _ in range(_BATCH):
                parts = recv(zmq.NOBLOCK, copy=copy)
                handle(parts)  # type: ignore[arg-type]
                if self.closed:
                    return
        except zmq.Again:
            return
        except zmq.ZMQError:
            if self.closed:
                return
            raise
        self._schedule()  # more may be waiting: come back after others had a turn

    def handle(self, parts: list[bytes]) -> None:
        raise TypeError("subclasses handle frames")

    def send(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts, zmq.NOBLOCK, copy=len(parts[-1]) < 65536)
        self._schedule()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self._fd)
        self.sock.close()
        open_sockets.discard(self.sock)


class _RouterLink(Watched, ListenLink):
    def __init__(self, address: str, on_frame: OnListenFrame, max_frame: int,
                 curve: CurveServer | None) -> None:
        super().__init__(zmq.ROUTER, max_frame)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._on_frame = on_frame
        self._ipc_path: str | None = None
        self._zap_domain: bytes | None = None
        if curve is not None:
            from channels import _zap

            # Registered before binding: libzmq admits every key while no handler answers.
            self._zap_domain = _zap.register(curve.access)
            self.sock.setsockopt(zmq.CURVE_SERVER, 1)
            self.sock.setsockopt(zmq.CURVE_SECRETKEY, curve.keypair.secret)
            self.sock.setsockopt(zmq.ZAP_DOMAIN, self._zap_domain)
            self.copy = False  # Frames, which carry their metadata
            self.handle = self._handle_curve  # type: ignore[method-assign,assignment]
        try:
            self.sock.bind(address)
        except zmq.ZMQError as exc:
            self.close()
            raise AddressError(f"cannot listen on {address}: {exc.strerror}") from exc
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.address.startswith("ipc://"):
            self._ipc_path = self.address[len("ipc://"):]

    def handle(self, parts: list[bytes]) -> None:
        if len(parts) < 2:
            return  # zmq always prefixes the identity; anything else is not a frame
        self._on_frame(parts[0], parts[1:], None)

    def _handle_curve(self, frames: list[zmq.Frame]) -> None:
        """A CURVE message, read as zmq Frames for the key it was authenticated with (its
        User-Id, set by the ZAP handler), which the listener checks on every frame."""
        if len(frames) < 2:
            return
        user = frames[-1].get("User-Id")
        self._on_frame(frames[0].bytes, [frame.bytes for frame in frames[1:]],
                       user if isinstance(user, str) else None)

    def send(self, key: bytes, parts: list[bytes]) -> None:  # type: ignore[override]
        try:
            Watched.send(self, [key, *parts])
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                raise PeerLost("the peer disconnected") from exc
            raise PeerLost(f"cannot send to the peer: {exc.strerror}") from exc

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._zap_domain is not None:
            from channels import _zap

            _zap.unregister(self._zap_domain)
        if self._ipc_path:
            # zmq unlinks the socket file it created; make sure nothing is left either way.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._ipc_path)


_monitors = itertools.count(1)
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED
                     | zmq.EVENT_DISCONNECTED)


class _HandshakeMonitor(Watched):
    """A CURVE dialer's socket events: a refused handshake is reported at once, rather than
    left to zmq's silent reconnecting until the connect timeout."""

    def __init__(self, dealer: zmq.Socket[bytes], on_broken: OnBroken) -> None:
        # An endpoint of its own: pyzmq's default names it by the socket's fd, which the next
        # socket reuses while libzmq may still hold the old endpoint (EADDRINUSE under churn).
        endpoint = f"inproc://shoal-monitor-{next(_monitors)}"
        dealer.monitor(endpoint, _HANDSHAKE_FAILED)
        pair: zmq.Socket[bytes] = context().socket(zmq.PAIR)
        pair.connect(endpoint)
        super().__init__(zmq.PAIR, 4096, pair)
        self._on_broken = on_broken
        self._shaken = False  # a handshake succeeded once: later drops are the session's

    def handle(self, parts: list[bytes]) -> None:
        if len(parts) < 2 or len(parts[0]) < 6:
            return
        event = int.from_bytes(parts[0][:2], "little")
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._shaken = True
            return
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            reason = "the listener refused this client's key"
        elif event == zmq.EVENT_DISCONNECTED:
            if self._shaken:
                return
            # A listener that cannot open our HELLO (it has another key) just hangs up.
            reason = ("the listener hung up during the CURVE handshake: its key is not the one "
                      "this client has for it, or it does not use CURVE")
        else:
            reason = ("the CURVE handshake failed: its key is not the one this client has "
                      "for it, or it does not use CURVE")
        self._on_broken(ConnectFailed(reason))


class _DealerLink(Watched, DialLink):
    def __init__(self, address: str, on_frame: OnFrame, on_broken: OnBroken, max_frame: int,
                 curve: CurveClient | None) -> None:
        super().__init__(zmq.DEALER, max_frame)
        self._on_frame = on_frame
        self._monitor: _HandshakeMonitor | None = None
        if curve is not None:
            self.sock.setsockopt(zmq.CURVE_SERVERKEY, curve.server_key)
            self.sock.setsockopt(zmq.CURVE_PUBLICKEY, curve.keypair.public)
            self.sock.setsockopt(zmq.CURVE_SECRETKEY, curve.keypair.secret)
            try:
                self._monitor = _HandshakeMonitor(self.sock, on_broken)
            except zmq.ZMQError as exc:
                self.close()
                raise ConnectFailed(f"cannot watch the CURVE handshake: {exc.strerror}") \
                    from exc
            self._monitor.watch()
        try:
            self.sock.connect(address)
        except zmq.ZMQError as exc:
            self.close()
            raise AddressError(f"cannot connect to {address}: {exc.strerror}") from exc

    def handle(self, parts: list[bytes]) -> None:
        self._on_frame(parts)

    def close(self) -> None:
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            with contextlib.suppress(zmq.ZMQError):
                self.sock.disable_monitor()
            monitor.close()
        super().close()

    def send(self, parts: list[bytes]) -> None:
        try:
            Watched.send(self, parts)
        except zmq.ZMQError as exc:
            raise PeerLost(f"cannot send to the listener: {exc.strerror}") from exc


class ZmqTransport(Transport):
    def __init__(self, scheme: str) -> None:
        self.scheme = scheme

    def _normalise(self, address: str) -> str:
        scheme, where = split_address(address)
        if scheme != self.scheme:
            raise AddressError(f"{address} is not a {self.scheme}:// address")
        if scheme == "tcp":
            host, sep, port = where.rpartition(":")
            if not sep or not host or not (port == "*" or port.isdigit()):
                raise AddressError(f"malformed tcp address {address!r}: expected tcp://HOST:PORT")
            if port == "0":
                where = f"{host}:*"
        return f"{scheme}://{where}"

    async def listen(self, address: str, on_frame: OnListenFrame, on_gone: OnPeerGone,
                     *, max_frame: int, security: Security = None) -> ListenLink:
        if security is not None and not isinstance(security, CurveServer):
            raise AddressError("a listener takes CURVE server options (CurveServer)")
        try:
            link = _RouterLink(self._normalise(address), on_frame, max_frame, security)
        except zmq.ZMQError as exc:
            raise AddressError(f"cannot open a socket for {address}: {exc.strerror}") from exc
        link.watch()
        return link

    async def dial(self, address: str, on_frame: OnFrame, on_broken: OnBroken,
                   *, max_frame: int, security: Security = None) -> DialLink:
        normal = self._normalise(address)
        if normal.endswith(":*"):
            raise AddressError(f"cannot connect to a wildcard port: {address}")
        if security is not None and not isinstance(security, CurveClient):
            raise AddressError("a dialer takes CURVE client options (CurveClient)")
        try:
            link = _DealerLink(normal, on_frame, on_broken, max_frame, security)
        except zmq.ZMQError as exc:  # e.g. EMFILE: out of sockets or descriptors
            raise ConnectFailed(f"cannot open a socket for {address}: {exc.strerror}") \
                from exc
        link.watch()
        return link


def transports() -> list[tuple[str, Callable[[], Transport]]]:
    return [("tcp", lambda: ZmqTransport("tcp")), ("ipc", lambda: ZmqTransport("ipc"))]
