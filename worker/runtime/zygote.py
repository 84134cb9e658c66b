"""A small process, started once by the runtime helper, that forks container inits for it.

Forking copies the page tables of the process that forks, the child then pays a fault for
every page it writes, and exec'ing the container's program tears that address space down
again. The helper is a Python process of ~36 MiB (msgspec, structlog, the wire protocol); this
one is started with ``python -S`` and imports only what an init runs (``init``, ``rootfs``,
``process``, ``syscalls``, ``plan``: ~16 MiB), so every init is cheaper to fork and to exec.

It forks with ``clone(CLONE_PARENT)``: the init is the helper's child, as if the helper had
forked it, so the helper reaps it and reads its exit status as before, and the death signal an
init arms during create follows the helper.

Over a SOCK_SEQPACKET socket (fd 3), after ``{"ready": PID}``, the helper sends either
``S`` + a pickled ``Spawn`` with, as SCM_RIGHTS, the init's end of the launcher's socketpair and
its three stdio descriptors (answer ``{"pid": N}``, or ``{"errno": E, "reason": "..."}`` when
clone failed); ``E`` + a pickled ``ExecSpawn`` with the process's socket and stdio and, when
the container has its own, a descriptor of its pid namespace, for a process exec'd into a
running container (answered like ``S``); or ``R`` + a number [+ ``:`` + a pickled
``Spawn``] for a spare (answer ``{"spare": PID}`` with the spare's socket): the network, IPC
and UTS namespace flags the spare creates ahead of time, those of the helper's last create (a
host's containers tend to look alike; a new network namespace alone costs ~0.5 ms), and that
create's request, which the spare decodes once while it waits (see ``_spare_main``). A spare
whose request does not want one of the namespaces goes back to the zygote's. Only the helper
that started the zygote holds the other end: the pickles are its own.

A spare (Android's zygote calls them unspecialized app processes) is an init cloned ahead of
time into a new pid namespace, waiting on its own socket for the same pickled ``Spawn`` and
descriptors; the helper hands a create straight to it, so neither the clone nor a round trip
through the zygote is on the create's path, and asks for the next spare afterwards. A spare
whose socket closes (the helper is gone) exits.
"""

from __future__ import annotations

import _pickle
import _socket
import gc
import os
import sys

from worker.runtime import jsontext
from worker.runtime import syscalls as sc
from worker.runtime.enter import ExecTarget, cloned_main
from worker.runtime.init import InitContext, direct_main, preload, recv_bytes, send_bytes
from worker.runtime.plan import NAMESPACES, Plan, ProcessPlan
from worker.runtime.records import Record, prepare

# Every module here is in every init's address space: what the zygote imports, each fork
# copies the page tables of, each init's writes fault in, each exec tears down. So the C
# halves of socket, signal and pickle (their Python halves import enum, selectors and re),
# records rather than dataclasses (inspect, ast), and no typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from typing import NoReturn
else:
    import _signal as signal

MAX_REQUEST = 1 << 20  # a plan with large hooks or many mounts stays far below this
FDS_PER_REQUEST = 4   # the init's socket, stdin, stdout, stderr
MAX_FDS = FDS_PER_REQUEST + 1  # an exec: and the container's pid namespace
SOCKET_FD = 3


class ExecSpawn(Record):
    """What an exec'd process needs besides its descriptors."""

    target: ExecTarget
    proc: ProcessPlan


class Spawn(Record):
    """InitContext without what travels as descriptors."""

    container_id: str
    plan: Plan
    fifo_path: str
    cgroup_procs: list[str]
    cgroup_mounts: dict[str, str]
    state_json: bytes
    late_cgroups: bool


def _reply(sock: _socket.socket, message: dict[str, object]) -> None:
    sock.send(jsontext.dumps(message).encode())


# The namespaces a spare may create ahead of time. Not the mount namespace: it would copy the
# mount table before the container's rootfs is mounted.
AHEAD = NAMESPACES["network"][0] | NAMESPACES["ipc"][0] | NAMESPACES["uts"][0]


def _become_init(data: bytes, fds: list[int], made: int = 0,
                 own_ns: dict[str, int] | None = None) -> NoReturn:
    """In a cloned child: turn the request into the container's init (never returns).
    ``made``: the namespaces created with the clone; ``own_ns``: the zygote's, by kind."""
    try:
        conn_fd, stdin, stdout, stderr = fds
        ctx = _context(data, _socket.socket(fileno=conn_fd), (stdin, stdout, stderr), made,
                       own_ns or {})
    except BaseException:
        os._exit(1)  # the launcher sees its socket close: "exited before reporting"
    direct_main(ctx)


def _context(data: bytes, conn: _socket.socket, stdio: tuple[int, int, int], made: int,
             own_ns: dict[str, int]) -> InitContext:
    """The init's context from a pickled ``Spawn`` and what came as descriptors."""
    spawn = _pickle.loads(data)
    if not isinstance(spawn, Spawn):
        raise OSError(22, "not a spawn request")
    return InitContext(container_id=spawn.container_id, plan=spawn.plan, conn=conn,
                       fifo_path=spawn.fifo_path, stdio=stdio, cgroup_procs=spawn.cgroup_procs,
                       cgroup_mounts=spawn.cgroup_mounts, state_json=spawn.state_json,
                       direct=True, late_cgroups=spawn.late_cgroups, made_ns=made,
                       own_ns=own_ns)


def _spare_main(sock: _socket.socket, made: int, own_ns: dict[str, int],
                warm: bytes) -> NoReturn:
    """A spare: wait for the request, then become that container's init. What every init does
    first is done while it waits: it becomes a session leader (setsid makes the kernel a
    scheduling autogroup for the session: ~0.5 ms on a create's path), it brings ``lo`` up in
    the network namespace it made ahead, and it decodes ``warm``, the last create's request,
    into a context: decoding one touches the classes, functions and memory pools that
    decoding the next will, and each first write to a page this process still shares with the
    zygote copies that page (~0.4 ms of faults, now off the path)."""
    try:
        os.setsid()
        if made & NAMESPACES["network"][0]:
            sc.loopback_up()  # as the init would in the namespace it makes (lo starts down)
        if warm:
            try:  # noqa: SIM105 - contextlib is no module of the zygote's
                _context(warm, sock, (0, 1, 2), made, own_ns)  # built to be dropped
            except Exception:
                pass  # only a head start: the request itself is decoded anyway
        data, fds = recv_bytes(sock, MAX_REQUEST, FDS_PER_REQUEST)
    except BaseException:
        os._exit(0)
    if not data or len(fds) != FDS_PER_REQUEST:
        os._exit(0)  # the helper is gone, or this is not a request
    sock.close()
    _become_init(data, fds, made, own_ns)


def _clone_spare(helper: _socket.socket, ahead: int, own_ns: dict[str, int],
                 warm: bytes) -> None:
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        pid = sc.clone_sibling(NAMESPACES["pid"][0] | ahead)
        if pid == 0:
            helper.close()
            ours.close()
            _spare_main(theirs, ahead, own_ns, warm)
        send_bytes(helper, jsontext.dumps({"spare": pid}).encode(), [ours.fileno()])
    finally:
        ours.close()
        theirs.close()


def _clone_init(helper: _socket.socket, data: bytes, fds: list[int]) -> int:
    """Clone a container's init now; in the child, become it. Returns the init's pid."""
    if len(fds) != FDS_PER_REQUEST:
        raise OSError(22, f"expected {FDS_PER_REQUEST} descriptors, got {len(fds)}")
    spawn = _pickle.loads(data)
    if not isinstance(spawn, Spawn):
        raise OSError(22, "not a spawn request")
    pid = sc.clone_sibling(NAMESPACES["pid"][0] if spawn.plan.creates("pid") else 0)
    if pid == 0:
        helper.close()
        _become_init(data, fds)
    return pid


def _clone_exec(helper: _socket.socket, data: bytes, fds: list[int], own_pid_ns: int) -> int:
    """Clone an exec'd process straight into its container's pid namespace (setting ours back
    right after), where it joins the rest and execs. Returns its pid."""
    if len(fds) not in (FDS_PER_REQUEST, MAX_FDS):
        raise OSError(22, f"expected {FDS_PER_REQUEST} or {MAX_FDS} descriptors, got {len(fds)}")
    spawn = _pickle.loads(data)
    if not isinstance(spawn, ExecSpawn):
        raise OSError(22, "not an exec request")
    pid_flag = NAMESPACES["pid"][0]
    if len(fds) == MAX_FDS:
        sc.setns(fds[4], pid_flag)  # for our next child only
    try:
        pid = sc.clone_sibling(0)
        if pid == 0:
            helper.close()
            conn_fd, stdin, stdout, stderr = fds[:4]
            cloned_main(spawn.target, spawn.proc, _socket.socket(fileno=conn_fd),
                        (stdin, stdout, stderr))
    finally:
        if len(fds) == MAX_FDS:
            try:
                sc.setns(own_pid_ns, pid_flag)
            except OSError:
                # Every later init would be cloned into that container: better none at all
                # (the helper forks them itself, then starts another zygote).
                os._exit(1)
    return pid


def serve(sock: _socket.socket) -> None:
    # Where a spare's init goes back to for a namespace it made but its container shares.
    own_ns = {kind: os.open(f"/proc/self/ns/{NAMESPACES[kind][1]}", os.O_RDONLY | os.O_CLOEXEC)
              for kind in ("network", "ipc", "uts")}
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    _reply(sock, {"ready": os.getpid()})
    while True:
        message, fds = recv_bytes(sock, MAX_REQUEST, MAX_FDS)
        if not message:
            return  # the helper is gone
        try:
            if message[:1] == b"R":
                try:
                    ahead, _, warm = message[1:].partition(b":")
                    _clone_spare(sock, int(ahead or b"0") & AHEAD, own_ns, warm)
                except OSError as exc:
                    _reply(sock, {"spare_failed": str(exc)})
            else:
                try:
                    if message[:1] == b"E":
                        pid = _clone_exec(sock, message[1:], fds, own_pid_ns)
                    else:
                        pid = _clone_init(sock, message[1:], fds)
                except OSError as exc:
                    _reply(sock, {"errno": exc.errno or 5, "reason": str(exc)})
                else:
                    _reply(sock, {"pid": pid})
        finally:
            for fd in fds:
                os.close(fd)


def main() -> None:
    """``python -S -c "from worker.runtime.zygote import main; main()" HELPER_PID``"""
    # The helper's death takes this process with it; it has nothing to clean up.
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if str(os.getppid()) != sys.argv[1]:
        sys.exit(1)  # the helper died before the death signal was armed
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = _socket.socket(fileno=SOCKET_FD)
    # Built and loaded here once, not by every init (a schema is parsed from the class's
    # annotations; an init with a network namespace, rlimits or a terminal imports modules).
    prepare(InitContext)
    preload()
    # No collector here nor in the inits: a collection writes into every object it visits,
    # and a write to a page shared with a live init copies the page. A request's objects
    # make no reference cycles (reference counting frees them), and an init execs soon.
    gc.freeze()
    gc.disable()
    try:  # noqa: SIM105 - contextlib is no module of the zygote's
        serve(sock)
    except (ConnectionError, EOFError):
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
