"""A plain socket to a listener's ZeroMQ ROUTER, speaking ZMTP (``channels._zmtp``): what the
blocking client dials with. ``tcp://HOST:PORT`` and ``ipc://PATH``, as the listeners bind them.

Connecting fails at once when nothing listens (refused, or no socket file), or after the
timeout when nothing answers; the peer closing the connection is seen at once too.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time

from channels._zmtp import ZmtpDealer
from protocol.errors import AddressError, ConnectFailed, PeerLost

TYPE_CHECKING = False
if TYPE_CHECKING:
    # CURVE (hashlib, pathlib: ~10 ms of a CLI command's start) is loaded by who makes a
    # CurveClient (channels.credentials, for tcp): an ipc session never needs it.
    from channels._curve import CurveClient

_READ = 1 << 18


def split_dial_address(address: str) -> tuple[str, str]:
    """``(scheme, where)`` of an address shoal can dial; AddressError for anything else."""
    scheme, sep, where = address.partition("://")
    if not sep or scheme not in ("tcp", "ipc") or not where:
        raise AddressError(f"{address!r} is not an address shoal can dial (tcp://HOST:PORT "
                           "or ipc://PATH)")
    if scheme == "tcp":
        host, colon, port = where.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise AddressError(f"malformed tcp address {address!r}: expected tcp://HOST:PORT")
    return scheme, where


class ZmtpConnection:
    """One connected socket and its ZMTP state; sends block, reads are the caller's to poll."""

    def __init__(self, address: str, *, max_message: int, timeout: float,
                 curve: CurveClient | None = None) -> None:
        self.address = address
        self.protocol = ZmtpDealer(max_message, curve)
        self.sock = _connect(address, timeout)
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, parts: list[bytes]) -> None:
        self.protocol.send(parts)
        self.flush()

    def flush(self) -> None:
        """Write everything pending, waiting for room when the kernel's buffer is full (the
        peer's ZeroMQ reads its socket whatever it does with the messages)."""
        outbox = self.protocol.outbox
        view = memoryview(outbox)
        sent = 0
        try:
            while sent < len(view):
                try:
                    sent += self.sock.send(view[sent:])
                except BlockingIOError:
                    _wait(self.sock, select.POLLOUT, None)
        except OSError as exc:
            raise PeerLost(f"cannot send to {self.address}: {exc.strerror or exc}") from exc
        finally:
            view.release()
            del outbox[:sent]

    def receive(self) -> list[list[bytes]]:
        """Every message that has arrived, without waiting; PeerLost once the peer is gone."""
        messages: list[list[bytes]] = []
        while True:
            try:
                data = self.sock.recv(_READ)
            except BlockingIOError:
                break
            except OSError as exc:
                self._handshake_cut()
                raise PeerLost(f"{self.address}: {exc.strerror or exc}") from exc
            if not data:
                self._handshake_cut()
                raise PeerLost(f"{self.address} closed the connection")
            messages += self.protocol.receive(data)
            if len(data) < _READ:
                break
        if self.protocol.outbox:
            self.flush()  # what waited for the handshake, or a PONG
        return messages

    def _handshake_cut(self) -> None:
        """The listener hung up before the handshake ended: say what that usually means."""
        if self.protocol.ready:
            return
        if self.protocol.mechanism == b"CURVE":
            raise ConnectFailed("the listener hung up during the CURVE handshake: its key is "
                                "not the one this client has for it, or it does not use CURVE")
        raise ConnectFailed("the listener hung up before the handshake ended: it may require "
                            "CURVE (enroll this client with a client token: shoal enroll)")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


def _connect(address: str, timeout: float) -> socket.socket:
    scheme, where = split_dial_address(address)
    deadline = time.monotonic() + timeout
    if scheme == "ipc":
        return _connect_one(socket.AF_UNIX, where, deadline, address)
    host, _, port = where.rpartition(":")
    host = host.strip("[]")
    targets = _literal(host, int(port))
    if not targets:
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectFailed(f"cannot resolve {host}: {exc.strerror}") from exc
        targets = [(family, target) for family, _, _, _, target in infos]
    error: ConnectFailed | None = None
    for family, target in targets:
        try:
            sock = _connect_one(family, target, deadline, address)
        except ConnectFailed as exc:
            error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    assert error is not None
    raise error


def _literal(host: str, port: int) -> list[tuple[int, object]]:
    """``host`` as an IP literal, without a resolver (which would import the idna codec)."""
    for family, target in ((socket.AF_INET, (host, port)), (socket.AF_INET6, (host, port, 0, 0))):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, target)]
    return []


def _connect_one(family: int, target: object, deadline: float, address: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    try:
        code = sock.connect_ex(target)  # type: ignore[arg-type]
        if code == errno.EINPROGRESS:
            if not _wait(sock, select.POLLOUT, deadline - time.monotonic()):
                raise ConnectFailed("no answer within the connect timeout")
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code in (errno.ECONNREFUSED, errno.ENOENT):
            raise ConnectFailed("connection refused" if code == errno.ECONNREFUSED
                                else "no such socket")
        if code:
            raise ConnectFailed(os.strerror(code).lower())
    except BaseException:
        sock.close()
        raise
    return sock


def _wait(sock: socket.socket, event: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(sock, event)
    if timeout is not None and timeout <= 0:
        return False
    return bool(poller.poll(None if timeout is None else max(1, int(timeout * 1000))))
