"""The worker's asyncio API to the runtime helper: ``await rt.create(...)``, ``await rt.wait(id)``.

Nothing here forks (beyond starting the helper once with fork+exec), so it is safe in a
threaded uvloop program. Use one ``RuntimeHelper`` from one event loop.

Example::

    rt = await RuntimeHelper.ensure("/run/shoal/runtime")    # connect, or start the helper
    out_r, out_w = os.pipe()                                 # the engine keeps the read end
    proc = await rt.create("web1", "/var/lib/shoal/bundles/web1", stdout=out_w, stderr=out_w)
    os.close(out_w)                                          # the container holds its copy
    await rt.start("web1")
    status = await rt.wait("web1")                           # ExitStatus(code=0, signal=None)
    await rt.delete("web1")

stdio: the caller passes the container's stdin/stdout/stderr as descriptors (pipes, files, the
write end of a fifo it can reopen after a restart, ...); they are duplicated into the helper
with ``SCM_RIGHTS``, handed to the container, and the helper keeps no copy. Omitted ones are
/dev/null. With ``process.terminal`` (or ``exec(tty=True)``) the result carries the pty master.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from protocol.errors import error_from_info
from worker.runtime import seqpacket, wire
from worker.runtime.errors import HelperLost
from worker.runtime.helper import DEFAULT_IDLE_EXIT, SOCKET_NAME, dir_path
from worker.runtime.ops import parse_signal
from worker.runtime.state import OciState

ExitStatus = wire.ExitStatus


@dataclass(frozen=True)
class Process:
    """A container's init (from create) or an exec'd process: its host pid, and the master
    side of its pty when it has one (the caller owns and closes it)."""

    pid: int
    pty_master: int | None = None


def _absolute(path: str | Path) -> str:
    return os.path.abspath(path)


def _package_root() -> str:
    import worker
    return str(Path(worker.__file__).resolve().parents[1])


class RuntimeHelper:
    """A connection to the helper that serves one runtime root."""

    def __init__(self, sock: socket.socket, root: Path,
                 process: asyncio.subprocess.Process | None = None) -> None:
        sock.setblocking(False)
        self.root = root
        self.helper_pid = 0
        self._sock = sock
        self._receiver = seqpacket.Receiver(sock)
        self._process = process
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, asyncio.Future[tuple[wire.Reply, builtins.list[int]]]] = {}
        self._outbox: deque[tuple[bytes, builtins.list[int]]] = deque()
        self._next_rid = 1
        self._lost: HelperLost | None = None
        # Told each call's operation (its wire class name) and seconds to the reply: metrics.
        self.on_reply: Callable[[str, float], None] | None = None
        self._loop.add_reader(sock.fileno(), self._readable)

    # --- getting a helper -------------------------------------------------------------------
    @classmethod
    async def spawn(cls, root: str | Path, *, python: str = sys.executable,
                    log_level: str = "info", idle_exit: float = DEFAULT_IDLE_EXIT,
                    ) -> RuntimeHelper:
        """Start a helper for ``root`` (a fresh interpreter, once) and connect to it. It exits
        after ``idle_exit`` seconds with no client and no live container (0: never)."""
        root = Path(_absolute(root))
        ours, theirs = seqpacket.new_pair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_package_root(), env.get("PYTHONPATH")) if p)
        try:
            # Its own session: the helper outlives the worker and its terminal's signals.
            process = await asyncio.create_subprocess_exec(
                python, "-m", "worker.runtime.helper", "--root", str(root), "--fd",
                str(theirs.fileno()), "--log-level", log_level, "--idle-exit", str(idle_exit),
                pass_fds=(theirs.fileno(),), start_new_session=True, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        rt = cls(ours, root, process)
        try:
            await rt._hello()
        except BaseException:
            await rt.close()
            await process.wait()
            raise
        return rt

    @classmethod
    async def connect(cls, root: str | Path) -> RuntimeHelper:
        """Connect to the helper already serving ``root`` (e.g. after the worker restarted)."""
        root = Path(_absolute(root))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            dir_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(dir_path(dir_fd, SOCKET_NAME))
            finally:
                os.close(dir_fd)
        except OSError as exc:
            sock.close()
            raise HelperLost(f"no runtime helper serves {root}: {exc}") from exc
        seqpacket.size_for(sock)
        rt = cls(sock, root)
        await rt._hello()
        return rt

    @classmethod
    async def ensure(cls, root: str | Path, *, idle_exit: float = DEFAULT_IDLE_EXIT,
                     ) -> RuntimeHelper:
        """The running helper of ``root``, or a new one."""
        try:
            return await cls.connect(root)
        except HelperLost:
            return await cls.spawn(root, idle_exit=idle_exit)

    async def _hello(self) -> None:
        info = await self._call(wire.Hello(), wire.HelperInfo)
        self.helper_pid = info.pid

    # --- container operations ---------------------------------------------------------------
    async def create(self, container_id: str, bundle: str | Path, *, stdin: int | None = None,
                     stdout: int | None = None, stderr: int | None = None) -> Process:
        """Create the container; its init waits for ``start``."""
        attached, fds = _stdio(stdin, stdout, stderr)
        op = wire.Create(id=container_id, bundle=_absolute(bundle), stdio=attached)
        return await self._started(op, fds)

    async def start(self, container_id: str) -> None:
        await self._call(wire.Start(id=container_id), wire.Done)

    async def kill(self, container_id: str, sig: str | int = signal.SIGTERM, *,
                   all_processes: bool = False) -> None:
        await self._call(wire.Kill(id=container_id, signal=parse_signal(sig),
                                   all=all_processes), wire.Done)

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        await self._call(wire.Delete(id=container_id, force=force), wire.Done)

    async def keep_input(self, container_id: str, fd: int) -> None:
        """Have the helper hold a copy of ``fd`` (ours stays ours), the container's input,
        until the container ends: it outlives this client."""
        await self._call(wire.KeepInput(id=container_id), wire.Done, [os.dup(fd)])

    async def drop_input(self, container_id: str) -> None:
        """Have the helper close the copy it keeps (the container's stdin is to end)."""
        await self._call(wire.DropInput(id=container_id), wire.Done)

    async def take_input(self, container_id: str) -> int | None:
        """A copy of the input the helper keeps for the container (ours to close), or None."""
        reply, got = await self._request(wire.TakeInput(id=container_id), [])
        kept = _result(reply, wire.Input).kept
        fd = got.pop(0) if kept and got else None
        for extra in got:
            os.close(extra)
        return fd

    async def wait(self, container_id: str) -> wire.ExitStatus:
        """Resolves when the container's init has exited (at once if it already has)."""
        return await self._call(wire.Wait(id=container_id), wire.ExitStatus)

    async def exec(self, container_id: str, args: builtins.list[str], *,
                   env: builtins.list[str] | None = None,
                   cwd: str | None = None, uid: int | None = None, gid: int | None = None,
                   tty: bool = False, stdin: int | None = None, stdout: int | None = None,
                   stderr: int | None = None, console_size: tuple[int, int] | None = None
                   ) -> Process:
        """Run a process in a running container (with a new pty if ``tty``, of
        ``console_size`` (rows, cols) from the start)."""
        attached, fds = _stdio(stdin, stdout, stderr)
        op = wire.Exec(id=container_id, args=list(args), env=env, cwd=cwd, uid=uid, gid=gid,
                       tty=tty, stdio=attached, console_size=console_size)
        return await self._started(op, fds)

    async def wait_exec(self, container_id: str, pid: int) -> wire.ExitStatus:
        return await self._call(wire.WaitExec(id=container_id, pid=pid), wire.ExitStatus)

    async def state(self, container_id: str) -> OciState:
        states = await self._call(wire.State(id=container_id), wire.States)
        return states.states[0]

    async def list(self) -> builtins.list[OciState]:
        return (await self._call(wire.List(), wire.States)).states

    async def ps(self, container_id: str) -> builtins.list[int]:
        return (await self._call(wire.Ps(id=container_id), wire.Pids)).pids

    # --- ending -----------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop the helper and wait until it has exited. Containers keep running; the next
        helper adopts them."""
        await self._call(wire.Shutdown(), wire.Done)
        self._lose(HelperLost("the runtime helper was shut down"))
        if self._process is not None:
            await self._process.wait()

    async def close(self) -> None:
        """Disconnect; the helper keeps serving its containers."""
        self._lose(HelperLost("the connection to the runtime helper was closed"))

    # --- the transport ----------------------------------------------------------------------
    async def _started(self, op: wire.Create | wire.Exec, fds: builtins.list[int]) -> Process:
        reply, got = await self._request(op, fds)
        started = _result(reply, wire.Started)
        pty = got.pop(0) if started.pty and got else None
        for fd in got:
            os.close(fd)
        return Process(started.pid, pty)

    async def _call(self, op: wire.Op, kind: type[R],
                    fds: builtins.list[int] | None = None) -> R:
        reply, got = await self._request(op, fds or [])
        for fd in got:
            os.close(fd)
        return _result(reply, kind)

    async def _request(self, op: wire.Op,
                       fds: builtins.list[int]) -> tuple[wire.Reply, builtins.list[int]]:
        """Send one request (``fds`` are ours: closed once sent) and await its reply."""
        if self._lost is not None:
            for fd in fds:
                os.close(fd)
            raise self._lost
        rid = self._next_rid
        self._next_rid += 1
        future: asyncio.Future[tuple[wire.Reply, builtins.list[int]]] = self._loop.create_future()
        self._pending[rid] = future
        self._outbox.append((wire.encode(wire.Request(rid, op)), fds))
        self._flush()
        sent = self._loop.time()
        try:
            return await future
        finally:
            self._pending.pop(rid, None)
            if self.on_reply is not None and future.done() and not future.cancelled():
                self.on_reply(type(op).__name__, self._loop.time() - sent)

    def _flush(self) -> None:
        while self._outbox:
            data, fds = self._outbox[0]
            try:
                seqpacket.send(self._sock, data, fds)
            except BlockingIOError:
                self._loop.add_writer(self._sock.fileno(), self._writable)
                return
            except OSError as exc:
                self._lose(HelperLost(f"the runtime helper went away: {exc}"))
                return
            self._outbox.popleft()
            for fd in fds:
                os.close(fd)

    def _writable(self) -> None:
        self._loop.remove_writer(self._sock.fileno())
        self._flush()

    def _readable(self) -> None:
        while self._lost is None:
            try:
                data, fds = self._receiver.recv()
            except BlockingIOError:
                return
            except (OSError, seqpacket.Truncated) as exc:
                self._lose(HelperLost(f"reading from the runtime helper failed: {exc}"))
                return
            if data is None:
                self._lose(HelperLost(f"the runtime helper of {self.root} exited"))
                return
            reply = wire.decode_reply(data)
            future = self._pending.get(reply.rid)
            if future is None or future.done():  # the caller gave up (cancelled) meanwhile
                for fd in fds:
                    os.close(fd)
                continue
            future.set_result((reply, fds))

    def _lose(self, error: HelperLost) -> None:
        if self._lost is not None:
            return
        self._lost = error
        self._loop.remove_reader(self._sock.fileno())
        self._loop.remove_writer(self._sock.fileno())
        self._sock.close()
        for _data, fds in self._outbox:
            for fd in fds:
                os.close(fd)
        self._outbox.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)


R = TypeVar("R")


def _result(reply: wire.Reply, kind: type[R]) -> R:
    if reply.error is not None:
        raise error_from_info(reply.error)
    if not isinstance(reply.result, kind):
        raise HelperLost(f"the runtime helper answered {type(reply.result).__name__}, "
                         f"expected {kind.__name__}")
    return reply.result


def _stdio(*given: int | None) -> tuple[tuple[bool, bool, bool], builtins.list[int]]:
    """Which of stdin/stdout/stderr are attached, and our own duplicates of them: a request
    may wait in the outbox, and the caller is free to close its descriptors at once."""
    a, b, c = (fd is not None for fd in given)
    return (a, b, c), [os.dup(fd) for fd in given if fd is not None]
