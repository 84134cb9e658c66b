"""Entering a running container for exec: its namespaces and cgroups, then the new process.

Runs in a child of a single-threaded process, in one of two ways:

- ``forked_main``: forked by the launcher. It joins every namespace of the container; joining
  a pid namespace moves only the children, so it forks the process, reports its pid and exits
  (the process is reparented to the runtime, the subreaper).
- ``cloned_main``: cloned by the zygote straight into the container's pid namespace. It joins
  the other namespaces and becomes the process itself: one fork, from a small process.

Messages to the launcher, as for create: ``pty`` (with the master), ``pid`` (forked only),
``error`` with the step and the reason. The socket closes at exec.
"""

from __future__ import annotations

import _socket
import errno
import os

from worker.runtime import process as procmod
from worker.runtime import syscalls as sc
from worker.runtime.init import send
from worker.runtime.plan import JOIN_ORDER, NAMESPACES, ProcessPlan
from worker.runtime.procstat import proc_start_time
from worker.runtime.records import Record

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    import signal
    from typing import NoReturn
else:
    import _signal as signal  # signal.py's C half: signal.py adds enums (enum costs milliseconds)


class ExecTarget(Record):
    """The running container to enter (from its state record)."""

    container_id: str
    pid: int
    pid_start: int
    namespaces: tuple[str, ...]  # names under /proc/PID/ns the container owns
    cgroup_dirs: tuple[str, ...]


class _Entry:
    def __init__(self, conn: _socket.socket) -> None:
        self.conn = conn
        self.step = "stdio"

    def fail(self, exc: BaseException, code: int) -> NoReturn:
        try:  # noqa: SIM105 - contextlib costs the zygote's every init its pages
            send(self.conn, {"t": "error", "step": self.step, "reason": str(exc)})
        except OSError:
            pass
        os._exit(code)


def _stdio(stdio: tuple[int, int, int]) -> None:
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target, inheritable=True)
        else:
            os.set_inheritable(fd, True)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _join(entry: _Entry, target: ExecTarget, *, pid_joined: bool) -> None:
    """The container's cgroups and namespaces (its pid namespace too unless ``pid_joined``)."""
    # Open every namespace first: after joining the mount namespace /proc is the container's.
    fds: dict[str, int] = {}
    try:
        for kind in JOIN_ORDER:
            name = NAMESPACES[kind][1]
            if name not in target.namespaces or (kind == "pid" and pid_joined):
                continue
            entry.step = f"open {name} namespace"
            theirs = f"/proc/{target.pid}/ns/{name}"
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            fds[kind] = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
        if proc_start_time(target.pid) != target.pid_start:
            raise OSError(errno.ESRCH, "the container's init is gone")
        entry.step = "join cgroups"
        for d in target.cgroup_dirs:
            fd = os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        for kind in JOIN_ORDER:
            if kind in fds:
                entry.step = f"join {kind} namespace"
                sc.setns(fds[kind], NAMESPACES[kind][0])
    finally:
        for fd in fds.values():
            os.close(fd)


def _become(entry: _Entry, proc: ProcessPlan) -> NoReturn:
    """Terminal, limits, user and capabilities, then exec (in the process itself), which
    outlives the runtime: no death signal."""
    sc.prctl(sc.PR_SET_PDEATHSIG, 0)
    if proc.terminal:
        entry.step = "terminal"
        os.setsid()
        master = procmod.take_terminal(proc.console_size)
        send(entry.conn, {"t": "pty"}, [master])
        os.close(master)
    entry.step = "rlimits"
    procmod.set_rlimits(proc)
    entry.step = "process.args"
    executable = procmod.find_executable(proc.args[0], proc.env)
    entry.step = "user and capabilities"
    entered = procmod.become(proc)
    entry.step = "exec"
    procmod.exec_process(proc, executable, cwd_entered=entered)
    raise OSError(errno.ENOEXEC, "exec returned")  # pragma: no cover - exec raises instead


def forked_main(target: ExecTarget, proc: ProcessPlan, conn: _socket.socket,
                stdio: tuple[int, int, int]) -> NoReturn:
    """In a child the launcher forked: join everything, fork the process, report its pid."""
    entry = _Entry(conn)
    try:
        procmod.import_needed(proc)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        _stdio(stdio)
        _join(entry, target, pid_joined=False)
        entry.step = "fork"
        pid = os.fork()
        if pid == 0:
            try:
                _become(entry, proc)
            except BaseException as exc:
                entry.fail(exc, 127)
        send(conn, {"t": "pid", "pid": pid})
    except BaseException as exc:
        entry.fail(exc, 1)
    os._exit(0)


def cloned_main(target: ExecTarget, proc: ProcessPlan, conn: _socket.socket,
                stdio: tuple[int, int, int]) -> NoReturn:
    """In a child the zygote cloned inside the container's pid namespace: join the rest and
    become the process."""
    entry = _Entry(conn)
    try:
        procmod.import_needed(proc)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        _stdio(stdio)
        _join(entry, target, pid_joined=True)
        _become(entry, proc)
    except BaseException as exc:
        entry.fail(exc, 127)
