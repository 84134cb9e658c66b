"""Datagrams with descriptors over a ``SOCK_SEQPACKET`` unix socket (both ends of the helper).

One ``sendmsg`` is one message; descriptors ride along as ``SCM_RIGHTS``. Receiving goes into a
buffer allocated once per connection, so a small reply does not cost a large allocation.
"""

from __future__ import annotations

import array
import os
import socket

from worker.runtime.wire import MAX_DATAGRAM, MAX_FDS

SO_SNDBUFFORCE = 32  # not in Python's socket module; root may exceed wmem_max with it
_ANC_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)


class Truncated(Exception):
    """A datagram larger than MAX_DATAGRAM (the peer does not follow the protocol)."""


def new_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    size_for(a)
    size_for(b)
    return a, b


def size_for(sock: socket.socket) -> None:
    """Let one datagram carry MAX_DATAGRAM bytes (a unix datagram is bounded by the send buffer)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, MAX_DATAGRAM + 65536)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_DATAGRAM + 65536)


def send(sock: socket.socket, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> None:
    """Send one datagram; raises BlockingIOError on a full non-blocking socket (nothing sent)."""
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


class Receiver:
    """Reads datagrams from one socket into a buffer it keeps."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray(MAX_DATAGRAM)

    def recv(self) -> tuple[bytes | None, list[int]]:
        """The next datagram and its descriptors; (None, []) at end of stream. Raises
        BlockingIOError when a non-blocking socket has nothing, Truncated on an oversize one."""
        n, ancdata, flags, _addr = self.sock.recvmsg_into([self._buf], _ANC_SPACE,
                                                          socket.MSG_CMSG_CLOEXEC)
        fds: list[int] = []
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(raw[:len(raw) - len(raw) % arr.itemsize])
                fds.extend(arr)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            raise Truncated(f"datagram or descriptors truncated (flags {flags:#x})")
        if n == 0 and not fds:
            return None, []
        return bytes(self._buf[:n]), fds
