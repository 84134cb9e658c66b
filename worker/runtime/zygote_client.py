"""The runtime helper's end of its zygote (``worker.runtime.zygote``): start it, keep a spare
init from it at hand, have it clone inits and exec'd processes, and let the helper fork them
itself whenever the zygote cannot serve."""

from __future__ import annotations

import _socket
import json
import os
import pickle
import socket
import sys

from worker.runtime.enter import ExecTarget
from worker.runtime.errors import CreateFailed, OperationFailed
from worker.runtime.init import InitContext
from worker.runtime.lazylog import LazyLogger
from worker.runtime.plan import Plan, ProcessPlan
from worker.runtime.zygote import AHEAD, FDS_PER_REQUEST, SOCKET_FD, ExecSpawn, Spawn

log = LazyLogger(__name__)

READY_TIMEOUT = 30.0  # a cold interpreter start on a loaded host
REPLY_TIMEOUT = 10.0  # one clone
MAX_RESTARTS = 3      # then the helper forks every init itself


def _import_roots() -> list[str]:
    """Where the zygote finds our packages and msgspec without ``site`` (it runs ``-S``)."""
    import worker

    ours = os.path.dirname(os.path.dirname(os.path.abspath(worker.__file__)))
    return [ours, *(p for p in sys.path if p and p != ours)]


class Zygote:
    """One zygote process, started by ``start``. ``fork`` returns an init's pid, or None when
    the zygote is not (or no longer) there and the caller must fork the init itself."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.ready = False
        self.restarts = 0
        self.spare: tuple[int, socket.socket] | None = None
        self.spare_asked = False
        # The namespaces the next spare should make ahead, when a create has used the last
        # one (or the zygote cloned its init): asked for by ``replenish``.
        self.spare_wanted: int | None = None
        self.last_request = b""  # the last create's pickled Spawn: the next spare's warm-up

    def start(self) -> None:
        """Start the zygote and ask it for a spare; it gets ready in the background (``fork``
        waits for that)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(_import_roots())
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-S", "-c", "from worker.runtime.zygote import main; main()",
                 str(os.getpid())],
                env,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
                              (os.POSIX_SPAWN_DUP2, 0, 1),
                              (os.POSIX_SPAWN_DUP2, theirs.fileno(), SOCKET_FD)])
        except OSError as exc:
            log.warning("zygote.start_failed", error=str(exc))
            ours.close()
            return
        finally:
            theirs.close()
        self.sock = ours
        self.ready = False
        self._ask_spare()

    def close(self) -> None:
        """Stop using the zygote and the spare: closing their sockets makes them exit (the
        helper reaps them)."""
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.ready = False
        self._drop_spare()

    def _drop_spare(self) -> None:
        if self.spare is not None:
            self.spare[1].close()
        self.spare = None

    def _lost(self, why: str) -> None:
        log.warning("zygote.lost", pid=self.pid, reason=why)
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.ready = False
        self.spare_asked = False

    def _ask_spare(self, ahead: int = AHEAD) -> None:
        """Ask for a spare that has made the namespaces in ``ahead`` already (those of the
        create just handed out: the next one is likely alike)."""
        if self.sock is None or self.spare_asked or self.spare is not None:
            return
        try:
            self.sock.send(b"R%d:" % ahead + self.last_request)
        except OSError as exc:
            self._lost(str(exc))
            return
        self.spare_asked = True

    def _recv(self, timeout: float | None) -> dict[str, object] | None:
        """One message from the zygote (None: nothing within ``timeout``, or it is lost);
        spares that arrive are kept."""
        while self.sock is not None:
            self.sock.settimeout(timeout)
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 4096, 1)
            except (BlockingIOError, TimeoutError):
                if timeout:
                    self._lost(f"no answer within {timeout}s")
                return None
            except OSError as exc:
                self._lost(str(exc))
                return None
            if not data:
                for fd in fds:
                    os.close(fd)
                self._lost("it exited")
                return None
            message: dict[str, object] = json.loads(data)
            if "spare" in message or "spare_failed" in message:
                self.spare_asked = False
                pid = message.get("spare")
                if isinstance(pid, int) and len(fds) == 1:
                    self._drop_spare()
                    self.spare = (pid, socket.socket(fileno=fds[0]))
                else:
                    for fd in fds:
                        os.close(fd)
                    log.warning("zygote.no_spare", reason=message.get("spare_failed"))
                continue
            for fd in fds:
                os.close(fd)
            return message
        return None

    def _is_ready(self) -> bool:
        if self.sock is None:
            if self.pid is not None and self.restarts < MAX_RESTARTS:
                self.restarts += 1
                self.start()  # ready for a later create; this one forks in the helper
            return False
        if not self.ready:
            if self._recv(READY_TIMEOUT) is None:
                return False
            self.ready = True
        self._recv(0.0)  # collect a spare that has come meanwhile
        return self.sock is not None

    def replenish(self) -> None:
        """Ask for the next spare if a create took the last one. The helper calls this once
        that create has been answered: cloning a spare and making its namespaces ahead would
        otherwise compete with the create for the CPU (on two cores, with the launcher and the
        init busy, it delayed both)."""
        if self.spare_wanted is not None:
            ahead, self.spare_wanted = self.spare_wanted, None
            self._ask_spare(ahead)

    def fork(self, ctx: InitContext) -> int | None:
        """An init for ``ctx``: handed to the spare, or cloned by the zygote. Its pid, or None
        if the zygote cannot serve (then no init exists). CreateFailed if a clone failed."""
        if not self._is_ready():
            return None
        spawn = Spawn(container_id=ctx.container_id,
                      # Resources are the launcher's business (cgroups), not the init's.
                      plan=ctx.plan if ctx.plan.resources is None else _without_resources(ctx),
                      fifo_path=ctx.fifo_path, cgroup_procs=ctx.cgroup_procs,
                      cgroup_mounts=ctx.cgroup_mounts, state_json=ctx.state_json,
                      late_cgroups=ctx.late_cgroups)
        data = pickle.dumps(spawn, protocol=pickle.HIGHEST_PROTOCOL)
        self.last_request = data
        fds = [ctx.conn.fileno(), *ctx.stdio]
        assert len(fds) == FDS_PER_REQUEST
        if ctx.plan.creates("pid") and self.spare is not None:
            pid, sock = self.spare
            self.spare = None
            try:
                socket.send_fds(sock, [data], fds)
            except OSError as exc:
                log.warning("zygote.spare_gone", pid=pid, error=str(exc))
            else:
                self.spare_wanted = _ahead(ctx.plan)
                return pid
            finally:
                sock.close()
        assert self.sock is not None
        try:
            socket.send_fds(self.sock, [b"S" + data], fds)
        except OSError as exc:
            self._lost(str(exc))
            return None
        reply = self._recv(REPLY_TIMEOUT)
        self.spare_wanted = _ahead(ctx.plan)
        if reply is None:
            # It may have cloned the init before it died: that init reports to ctx.conn's
            # peer, which the failed create closes, and exits.
            raise CreateFailed("fork init", "the runtime's zygote process died")
        cloned = reply.get("pid")
        if isinstance(cloned, int):
            return cloned
        raise CreateFailed("fork init", str(reply.get("reason")))

    def exec(self, target: ExecTarget, proc: ProcessPlan, conn: _socket.socket,
             stdio: tuple[int, int, int]) -> int | None:
        """Have the zygote clone a process straight into ``target``'s pid namespace, to join
        the rest and exec; its pid, or None if the zygote cannot serve (nothing was cloned)."""
        if not self._is_ready():
            return None
        fds = [conn.fileno(), *stdio]
        pid_ns = None
        if "pid" in target.namespaces:
            try:
                pid_ns = os.open(f"/proc/{target.pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None  # forked here instead, which says what is wrong
            fds.append(pid_ns)
        assert self.sock is not None
        try:
            socket.send_fds(self.sock, [_exec_message(target, proc)], fds)
        except OSError as exc:
            self._lost(str(exc))
            return None
        finally:
            if pid_ns is not None:
                os.close(pid_ns)
        reply = self._recv(REPLY_TIMEOUT)
        if reply is None:
            raise OperationFailed("exec: the runtime's zygote process died")
        cloned = reply.get("pid")
        if isinstance(cloned, int):
            return cloned
        raise OperationFailed(f"exec failed at step 'clone': {reply.get('reason')}",
                              details={"step": "clone"})


def _exec_message(target: ExecTarget, proc: ProcessPlan) -> bytes:
    return b"E" + pickle.dumps(ExecSpawn(target, proc), protocol=pickle.HIGHEST_PROTOCOL)


def _ahead(plan: Plan) -> int:
    """The namespaces a spare could have made for a create like this one."""
    return sum(ns.flag for ns in plan.namespaces if ns.path is None and ns.flag & AHEAD)


def _without_resources(ctx: InitContext) -> Plan:
    return ctx.plan.replace(resources=None)
