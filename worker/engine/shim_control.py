"""The control socket of a process-driver shim that holds a container's input.

The shim keeps our end of the container's stdin (the pty master with a tty, else the write end
of its stdin pipe), so the container keeps its terminal and its open stdin while no worker runs.
Each worker that connects is handed a duplicate of that descriptor (``SCM_RIGHTS``, as the
runtime helper hands a pty master to the native driver) and writes input and sets the window
size on it directly. The one command is ``close stdin``: the attached client's input ended, so
the shim closes its write end and the container reads EOF (a terminal stays open).

The socket lives in a short private directory of its own under the temporary directory (a unix
socket path is limited to about 100 bytes; the container's state directory may be longer).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile

HANDED = b"F"  # a descriptor comes with this byte
CLOSED = b"C"  # stdin is closed already: no descriptor
CLOSE_STDIN = b"c"  # worker → shim


class ControlServer:
    """The shim's side: a non-blocking listener and the workers connected to it."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="shoal-shim-")
        self.path = os.path.join(self.directory, "control")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.workers: dict[int, socket.socket] = {}

    def accept(self, input_fd: int | None) -> int | None:
        """Take a waiting worker and hand it ``input_fd`` (None: stdin is closed); the
        connection's descriptor to watch for commands, or None if nobody was waiting."""
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        try:
            conn.settimeout(5)  # a fresh connection's buffer is empty: this does not wait
            if input_fd is None:
                conn.sendall(CLOSED)
            else:
                socket.send_fds(conn, [HANDED], [input_fd])
            conn.setblocking(False)
        except OSError:
            conn.close()
            return None
        self.workers[conn.fileno()] = conn
        return conn.fileno()

    def command(self, fd: int) -> bytes | None:
        """What worker ``fd`` sent: None if nothing after all, b"" once it has gone (its
        connection is then closed)."""
        conn = self.workers[fd]
        try:
            data = conn.recv(64)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data = b""
        if not data:
            del self.workers[fd]
            conn.close()
        return data

    def close(self) -> None:
        for conn in self.workers.values():
            conn.close()
        self.workers.clear()
        self.listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class ShimInput:
    """The worker's side: its duplicate of the container's input (None once stdin is closed)
    and the connection that carries the close command."""

    def __init__(self, fd: int | None, conn: socket.socket) -> None:
        self.fd = fd
        self._conn = conn

    @classmethod
    def connect(cls, path: str, *, timeout: float = 5.0) -> ShimInput:
        """Connect to the shim listening at ``path``; OSError if it does not answer."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(timeout)
            conn.connect(path)
            data, fds, _flags, _addr = socket.recv_fds(conn, 1, 1)
        except BaseException:
            conn.close()
            raise
        if data != HANDED or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            if data != CLOSED:
                conn.close()
                raise ConnectionError(f"the shim at {path} answered {data!r}")
            return cls(None, conn)
        return cls(fds[0], conn)

    def close_stdin(self) -> None:
        """Ask the shim to close the container's stdin pipe, and close our duplicate."""
        with contextlib.suppress(OSError):
            self._conn.sendall(CLOSE_STDIN)
        self._close_fd()

    def _close_fd(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        """Let go of the input (the shim keeps it) and of the connection."""
        self._close_fd()
        self._conn.close()
