"""The runtime helper: one single-threaded process per runtime root that forks the containers,
reaps them as their subreaper, records their exit status and serves the ``wire`` protocol.

The worker is a threaded asyncio program and must not fork; it starts this helper once
(``python -m worker.runtime.helper``, see ``client.RuntimeHelper.spawn``) and sends it requests.
The helper outlives its clients: a restarted worker reconnects through ``ROOT/.helper.sock``;
once it has had no client and no live container for ``--idle-exit`` seconds it exits.
If the helper itself dies, the containers run on (reparented); the next helper adopts them from
the state directory and watches each init through a pidfd, so it learns *when* an adopted
container exits but not its status, which only the dead reaper could have read
(``ExitStatus.code`` is then None). An flock on ``ROOT/.helper.lock`` keeps one helper per root.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from protocol.errors import ErrorInfo, ShoalError
from worker.runtime import seqpacket, wire
from worker.runtime import syscalls as sc
from worker.runtime.errors import ContainerNotFound, HelperLost, OperationFailed
from worker.runtime.ops import KILL_TIMEOUT, Runtime, exit_record
from worker.runtime.procstat import wait_gone
from worker.runtime.requests import dispatch
from worker.runtime.state import ExitRecord, StateDir, proc_start_time
from worker.runtime.zygote_client import Zygote

log = structlog.get_logger(__name__)

SOCKET_NAME = ".helper.sock"
LOCK_NAME = ".helper.lock"
# A helper with no client and no live container for this long exits (and its zygote with it):
# a stopped worker leaves nothing running, and the next worker starts a helper on demand.
DEFAULT_IDLE_EXIT = 60.0


def dir_path(dir_fd: int, name: str) -> str:
    """A short path to ``name`` in an open directory: unix socket paths are limited to 108
    bytes, runtime roots are not."""
    return f"/proc/self/fd/{dir_fd}/{name}"


class _Conn:
    """One client connection: its socket, receive buffer and the replies not yet sent."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        seqpacket.size_for(sock)
        self.sock = sock
        self.receiver = seqpacket.Receiver(sock)
        self.outbox: deque[tuple[bytes, list[int]]] = deque()
        self.closed = False


Waiter = tuple[_Conn, int]


class Helper:
    """The serving loop and the reaper; every request runs to completion before the next."""

    def __init__(self, root: Path, *, idle_exit: float | None = None) -> None:
        self.root = root
        self.rt = Runtime(root)
        self.sel = selectors.DefaultSelector()
        self.running = True
        self.idle_exit = idle_exit  # seconds with no client and no live container; None: never
        self.conns: set[_Conn] = set()
        self.inits: dict[int, str] = {}      # init pid -> container id (our children)
        self.execs: dict[int, str] = {}      # exec'd pid -> container id (our children)
        self.exits: dict[str, ExitRecord] = {}
        self.exec_exits: dict[int, ExitRecord] = {}
        self.waiters: dict[str, list[Waiter]] = {}
        self.exec_waiters: dict[int, list[Waiter]] = {}
        self.watched: dict[str, int] = {}    # adopted container id -> pidfd
        self.inputs: dict[str, int] = {}     # container id -> its input kept for clients
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.zygote: Zygote | None = None  # where inits come from, when there is one

    # --- setup ------------------------------------------------------------------------------
    def listen(self) -> None:
        """Take the root's lock and listen on its socket; HelperLost if another helper
        serves this root."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.lock_fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600,
                               dir_fd=dir_fd)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HelperLost(f"another runtime helper serves {self.root}") from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET_NAME, dir_fd=dir_fd)  # stale: its helper no longer holds the lock
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(dir_path(dir_fd, SOCKET_NAME))
        os.chmod(SOCKET_NAME, 0o600, dir_fd=dir_fd)
        os.close(dir_fd)
        listener.listen(16)
        listener.setblocking(False)
        self.listener = listener
        self.sel.register(listener, selectors.EVENT_READ, lambda _m: self._accept(listener))
        # SIGCHLD only wakes the loop; reaping happens there, never inside a handler.
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        self.sel.register(rfd, selectors.EVENT_READ, lambda _m: self._woken(rfd))
        sc.set_child_subreaper()

    def adopt_all(self) -> None:
        """Watch every container of the root that still runs and has no recorded exit."""
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not (entry / "state.json").exists():
                continue
            with contextlib.suppress(ShoalError, OSError, msgspec.DecodeError):
                self.adopt(entry.name)

    def add_connection(self, sock: socket.socket) -> None:
        conn = _Conn(sock)
        self.conns.add(conn)
        self.sel.register(sock, selectors.EVENT_READ, lambda m: self._on_conn(conn, m))

    # --- the loop ---------------------------------------------------------------------------
    def serve(self) -> None:
        idle_since: float | None = None
        while self.running:
            timeout = None
            if self.idle_exit is not None and self.idle():
                now = time.monotonic()
                idle_since = now if idle_since is None else idle_since
                timeout = idle_since + self.idle_exit - now
                if timeout <= 0 and not self.sel.select(0):
                    log.info("helper.idle_exit", root=str(self.root), idle_for=self.idle_exit)
                    self.running = False
                    break
            else:
                idle_since = None
            for key, mask in self.sel.select(None if timeout is None else max(0.0, timeout)):
                callback: Callable[[int], None] = key.data
                callback(mask)
        with contextlib.suppress(FileNotFoundError):
            (self.root / SOCKET_NAME).unlink()  # before the lock goes, with our exit
        for key in list(self.sel.get_map().values()):
            if isinstance(key.fileobj, socket.socket):
                key.fileobj.close()
        # No client can reach this helper any more: a new one may take the root at once
        # (rather than when this process is gone) and adopts what still runs.
        with contextlib.suppress(AttributeError):
            os.close(self.lock_fd)

    def idle(self) -> bool:
        """No client connected and no container whose process lives (created or running):
        nothing for this helper to do that a new one started on demand could not."""
        return not self.conns and not self.inits and not self.watched

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            sock, _ = listener.accept()
            self.add_connection(sock)

    def _woken(self, rfd: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(rfd, 4096):
                pass
        self.reap()

    def _on_conn(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if not mask & selectors.EVENT_READ:
            return
        while not conn.closed:
            try:
                data, fds = conn.receiver.recv()
            except BlockingIOError:
                return
            except (OSError, seqpacket.Truncated) as exc:
                log.warning("helper.bad_datagram", error=str(exc))
                self._close(conn)
                return
            if data is None:
                self._close(conn)
                return
            try:
                self._handle(conn, data, fds)
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.conns.discard(conn)
        self.sel.unregister(conn.sock)
        conn.sock.close()
        for _data, fds in conn.outbox:
            for fd in fds:
                os.close(fd)
        conn.outbox.clear()
        _drop_waiters(self.waiters, conn)
        _drop_waiters(self.exec_waiters, conn)

    def reply(self, conn: _Conn, rid: int, result: wire.Result | None = None,
               error: ErrorInfo | None = None, fds: list[int] | None = None) -> None:
        """Queue a reply; the descriptors in ``fds`` are ours and closed once sent."""
        owned = list(fds or [])
        if conn.closed:
            for fd in owned:
                os.close(fd)
            return
        conn.outbox.append((wire.encode(wire.Reply(rid, result, error)), owned))
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        while conn.outbox:
            data, fds = conn.outbox[0]
            try:
                seqpacket.send(conn.sock, data, fds)
            except BlockingIOError:
                self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                                self.sel.get_key(conn.sock).data)
                return
            except OSError:
                self._close(conn)
                return
            conn.outbox.popleft()
            for fd in fds:
                os.close(fd)
        if self.sel.get_key(conn.sock).events & selectors.EVENT_WRITE:
            self.sel.modify(conn.sock, selectors.EVENT_READ, self.sel.get_key(conn.sock).data)

    # --- requests ---------------------------------------------------------------------------
    def _handle(self, conn: _Conn, data: bytes, fds: list[int]) -> None:
        try:
            request = wire.decode_request(data)
        except msgspec.ValidationError as exc:
            log.warning("helper.bad_request", error=str(exc))
            self._close(conn)
            return
        try:
            dispatch(self, conn, request.rid, request.op, fds)
        except ShoalError as exc:
            self.reply(conn, request.rid, error=exc.to_info())
        except Exception as exc:  # a bug or an unexpected OS error: answer, keep serving
            log.exception("helper.request_failed", op=type(request.op).__name__)
            self.reply(conn, request.rid, error=ErrorInfo(
                code="runtime.operation_failed", message=f"{type(exc).__name__}: {exc}"))
        if self.zygote is not None:
            self.zygote.replenish()  # the request is answered: a spare for the next create

    # --- exits ------------------------------------------------------------------------------
    def reap(self) -> None:
        """Collect every child that has exited; answer whoever waits for it."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            record = exit_record(status)
            if pid in self.inits:
                self._exited(self.inits.pop(pid), record)
            elif pid in self.execs:
                self.execs.pop(pid)
                self.exec_exits[pid] = record
                for conn, rid in self.exec_waiters.pop(pid, []):
                    self.exec_exits.pop(pid, None)
                    self.reply(conn, rid, wire.exit_status(record))
            # Anything else is an orphan of a container without a pid namespace: reaped, gone.

    def keep_input(self, container_id: str, fd: int) -> None:
        """Hold a copy of ``fd`` (the caller's, not taken) until the container ends."""
        self.drop_input(container_id)
        self.inputs[container_id] = os.dup(fd)

    def drop_input(self, container_id: str) -> None:
        fd = self.inputs.pop(container_id, None)
        if fd is not None:
            os.close(fd)

    def _exited(self, container_id: str, record: ExitRecord) -> None:
        self.drop_input(container_id)
        self.exits[container_id] = record
        # Waiters first: the record is saved before the next request is read all the same.
        for conn, rid in self.waiters.pop(container_id, []):
            self.reply(conn, rid, wire.exit_status(record))
        with contextlib.suppress(ShoalError, OSError):
            StateDir(self.root, container_id).save_exit(record)
        log.debug("helper.exited", container_id=container_id, status=record.status)

    def adopt(self, container_id: str) -> bool:
        """Watch a container this helper is not the reaper of; False if it is not running."""
        if container_id in self.watched or container_id in self.inits.values():
            return True
        sd = StateDir(self.root, container_id)
        if sd.load_exit() is not None:
            return False
        record = sd.load()
        try:
            pidfd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            return False
        if proc_start_time(record.pid) != record.pid_start:
            os.close(pidfd)
            return False
        self.watched[container_id] = pidfd
        log.info("helper.adopted", container_id=container_id, pid=record.pid)

        def gone(_mask: int) -> None:
            self.sel.unregister(pidfd)
            os.close(pidfd)
            del self.watched[container_id]
            self._exited(container_id, ExitRecord(None))
        self.sel.register(pidfd, selectors.EVENT_READ, gone)
        return True

    def kill_and_collect(self, container_id: str) -> None:
        """SIGKILL a container's init and, if it is ours, reap it so its waiters are answered."""
        record = self.rt.record(container_id)
        with contextlib.suppress(ShoalError):
            self.rt.kill(container_id, signal.SIGKILL)
        if not wait_gone(record.pid, record.pid_start, KILL_TIMEOUT):
            raise OperationFailed(f"container {container_id!r} did not die within "
                                  f"{KILL_TIMEOUT}s")
        self.reap()

    def forget(self, container_id: str) -> None:
        """A deleted container: drop what is remembered about it."""
        self.drop_input(container_id)
        self.exits.pop(container_id, None)
        for pid in [p for p, c in self.execs.items() if c == container_id]:
            self.execs.pop(pid)
        pidfd = self.watched.pop(container_id, None)
        if pidfd is not None:
            self.sel.unregister(pidfd)
            os.close(pidfd)
        for conn, rid in self.waiters.pop(container_id, []):
            self.reply(conn, rid, error=ContainerNotFound(
                f"container {container_id!r} was deleted").to_info())


def _drop_waiters(table: dict[str, list[Waiter]] | dict[int, list[Waiter]],
                  conn: _Conn) -> None:
    for key, waiting in list(table.items()):
        kept = [w for w in waiting if w[0] is not conn]
        if kept:
            waiting[:] = kept
        else:
            del table[key]  # type: ignore[arg-type]


def _refuse(sock: socket.socket, exc: ShoalError) -> None:
    """Answer the first client's first request with why we cannot serve."""
    sock.settimeout(10.0)
    with contextlib.suppress(OSError, msgspec.ValidationError, seqpacket.Truncated):
        data, fds = seqpacket.Receiver(sock).recv()
        for fd in fds:
            os.close(fd)
        if data is not None:
            rid = wire.decode_request(data).rid
            seqpacket.send(sock, wire.encode(wire.Reply(rid, error=exc.to_info())))
    sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.runtime.helper")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--fd", type=int, default=None,
                        help="an inherited SOCK_SEQPACKET socket: the first client")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-zygote", action="store_true",
                        help="fork every init here rather than in a small zygote process")
    parser.add_argument("--idle-exit", type=float, default=DEFAULT_IDLE_EXIT, metavar="SECONDS",
                        help="exit (with the zygote) after this long with no client connected "
                             "and no container alive; 0: never")
    args = parser.parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[args.log_level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    helper = Helper(args.root.absolute(), idle_exit=args.idle_exit or None)
    first = None
    if args.fd is not None:
        first = socket.socket(fileno=args.fd)
        os.set_inheritable(args.fd, False)
    try:
        helper.listen()
    except HelperLost as exc:
        print(f"shoal runtime helper: {exc}", file=sys.stderr)
        if first is not None:
            _refuse(first, exc)
        return 1
    if first is not None:
        helper.add_connection(first)
    zygote = Zygote()
    if not args.no_zygote:
        zygote.start()
        helper.rt.forker = zygote.fork
        helper.rt.exec_cloner = zygote.exec
        helper.zygote = zygote
    helper.adopt_all()
    # What is loaded by now lives as long as the helper: the collector skips it from here on
    # (a full collection walked every module's objects, ~36 MB, on the containers' path).
    gc.freeze()
    log.info("helper.started", root=str(helper.root), pid=os.getpid(), zygote=zygote.pid)
    try:
        helper.serve()
    finally:
        zygote.close()
    log.info("helper.stopped", root=str(helper.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
