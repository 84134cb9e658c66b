"""The forked side of create: namespaces, then the container's init that builds its root and waits.

Two processes, both forked (no new interpreter): the *setup* child joins and creates the
namespaces and forks the *init*, which becomes pid 1 of a new pid namespace, builds the root,
reports ``created`` to the launcher and blocks on the gate fifo until ``start``. Without a user
namespace to create first, the launcher forks the init straight into its new pid namespace and
that one process does both parts (``direct_main``). Every step has a name; a failure is reported
to the launcher as ``{"t": "error", "step": ..., "reason": ...}``.
"""

from __future__ import annotations

import _socket
import errno
import os
import sys

from worker.runtime import hooks as hookmod
from worker.runtime import jsontext, rootfs
from worker.runtime import process as procmod
from worker.runtime import syscalls as sc
from worker.runtime.mountopts import MS_BIND
from worker.runtime.plan import JOIN_ORDER, NAMESPACES, Plan
from worker.runtime.records import Record, field

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    import signal
    from typing import NoReturn
else:
    import _signal as signal  # signal.py's C half: signal.py adds enums (enum costs milliseconds)

MAX_MESSAGE = 65536
MAX_FDS = 253  # SCM_MAX_FD: the bind sources of a user-namespaced container come in one message


class InitContext(Record, frozen=False):
    """What the forked children need; built by the launcher before fork."""

    container_id: str
    plan: Plan
    conn: _socket.socket
    fifo_path: str
    stdio: tuple[int, int, int]
    cgroup_procs: list[str]
    cgroup_mounts: dict[str, str]
    state_json: bytes
    step: str = "fork"
    direct: bool = False  # forked by the launcher straight into the pid namespace: no setup child
    # The launcher makes the cgroups and moves this init into them while it builds its root
    # (launcher._late_cgroups says when): the init does not join them itself, and waits for
    # the launcher's word that they exist only where it needs them (a cgroup mount; its
    # report).
    late_cgroups: bool = False
    cgroups_made: bool = False
    # Namespaces (clone flags) this init was cloned into ahead of its request (a spare of the
    # zygote), and the zygote's own of those kinds, to go back to where the plan shares them.
    made_ns: int = 0
    own_ns: dict[str, int] = field(default_factory=dict)
    extra_fds: list[int] = field(default_factory=list)
    # In a new user namespace the container's root is a mapped uid that may not reach what the
    # host's root can: the gate fifo is opened before the namespace is made, and bind sources
    # are opened by the launcher (mounts index -> O_PATH descriptor), as runc does.
    gate: int | None = None
    bind_sources: dict[int, int] = field(default_factory=dict)


# The launcher and its children talk over a SOCK_SEQPACKET pair (``_socket``: socket.py
# imports enum and selectors, milliseconds of a runtime command): one JSON message per
# datagram, descriptors as SCM_RIGHTS (what socket.send_fds and recv_fds do).
_FD_SIZE = 4  # a C int


def send(conn: _socket.socket, message: dict[str, object], fds: list[int] | None = None) -> None:
    send_bytes(conn, jsontext.dumps(message).encode(), fds)


def recv(conn: _socket.socket) -> tuple[dict[str, object] | None, list[int]]:
    data, fds = recv_bytes(conn, MAX_MESSAGE, MAX_FDS)
    if not data:
        return None, fds
    message: dict[str, object] = jsontext.loads(data)
    return message, fds


def send_bytes(conn: _socket.socket, data: bytes, fds: list[int] | None = None) -> None:
    """One datagram, with ``fds`` as SCM_RIGHTS."""
    if fds:
        raw = b"".join(fd.to_bytes(_FD_SIZE, sys.byteorder) for fd in fds)
        conn.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, raw)])
    else:
        conn.send(data)


def recv_bytes(conn: _socket.socket, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    """One datagram of at most ``size`` bytes and the descriptors it carries (at most
    ``max_fds``); b"" at the end of the stream."""
    space = _socket.CMSG_LEN(max_fds * _FD_SIZE)
    try:
        data, ancdata, _flags, _addr = conn.recvmsg(size, space)
    except ConnectionResetError:
        # The peer closed with a message of ours unread (an init that failed before the
        # launcher's word came): the kernel says so first, then hands over what it sent.
        data, ancdata, _flags, _addr = conn.recvmsg(size, space)
    fds = []
    for level, kind, raw in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [int.from_bytes(raw[i:i + _FD_SIZE], sys.byteorder, signed=True)
                    for i in range(0, len(raw) - len(raw) % _FD_SIZE, _FD_SIZE)]
    return data, fds


def _fail(ctx: InitContext, exc: BaseException) -> NoReturn:
    reason = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, (OSError, hookmod.HookFailed)):
        import traceback

        reason += " | " + "".join(traceback.format_exception(exc)[-3:]).strip()
    report: dict[str, object] = {"t": "error", "step": ctx.step, "reason": reason}
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno in errno.errorcode:
        report["errno"] = errno.errorcode[exc.errno]  # e.g. ENOENT: run's exit status 127
    try:  # noqa: SIM105 - contextlib is not on a command's path
        send(ctx.conn, report)
    except OSError:
        pass
    os._exit(1)


def setup_main(ctx: InitContext) -> NoReturn:
    """Entry of the setup child, right after fork in the launcher."""
    try:
        _setup(ctx)
    except BaseException as exc:
        _fail(ctx, exc)
    os._exit(0)


def direct_main(ctx: InitContext) -> NoReturn:
    """Entry of an init the launcher forked itself (already in its new pid namespace, if any):
    the setup child's steps, then the init's, in this one process."""
    try:
        _import_needed(ctx.plan)
        _stdio(ctx)
        if not ctx.late_cgroups:
            _join_cgroups(ctx)
        _namespaces(ctx)
        _init(ctx)
    except BaseException as exc:
        _fail(ctx, exc)
    os._exit(1)


def _setup(ctx: InitContext) -> None:
    _import_needed(ctx.plan)
    _stdio(ctx)
    _join_cgroups(ctx)
    _namespaces(ctx)
    ctx.step = "fork init"
    pid = os.fork()
    if pid == 0:
        try:
            _init(ctx)
        except BaseException as exc:
            _fail(ctx, exc)
        os._exit(1)
    send(ctx.conn, {"t": "pid", "pid": pid})


def preload() -> None:
    """Import every module an init may import late (``_import_needed``) except subprocess
    (startContainer hooks are rare, and it brings much more): a process that forks many inits
    (the zygote) loads each once, where each init would find and load it again."""
    import fcntl  # noqa: F401
    import resource  # noqa: F401
    import struct  # noqa: F401
    import termios  # noqa: F401


def _import_needed(plan: Plan) -> None:
    """What the init's later steps import, imported while the host's modules are in reach: a
    new user namespace's root, a pivoted root, may not reach them."""
    procmod.import_needed(plan.process)
    if plan.hooks.get("start_container"):  # run in the container, after pivot_root
        import subprocess  # noqa: F401 - hooks.run_hook's


def _stdio(ctx: InitContext) -> None:
    """Death signal and stdio."""
    ctx.step = "stdio"
    # The launcher may die mid-create: take the setup child with it.
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    for target, fd in enumerate(ctx.stdio):
        if fd != target:
            os.dup2(fd, target, inheritable=True)
        else:
            os.set_inheritable(fd, True)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _join_cgroups(ctx: InitContext) -> None:
    ctx.step = "join cgroups"
    for path in ctx.cgroup_procs:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def _await_cgroups(ctx: InitContext) -> None:
    """With late cgroups, the launcher's word that the container's cgroups exist (once)."""
    if not ctx.late_cgroups or ctx.cgroups_made:
        return
    ctx.step = "wait for cgroups"
    message, _ = recv(ctx.conn)
    if message is None or message.get("t") != "cgroups":
        raise OSError(5, "the launcher did not make the cgroups")
    ctx.cgroups_made = True


def _namespaces(ctx: InitContext) -> None:
    """Join the namespaces given by path, create the others (the pid namespace of a direct init
    was created by the launcher)."""
    plan = ctx.plan
    joined = {ns.kind: ns for ns in plan.namespaces if ns.path is not None}
    for kind in JOIN_ORDER:
        if kind in joined:
            ns = joined[kind]
            ctx.step = f"join {kind} namespace {ns.path}"
            fd = os.open(ns.path or "", os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, ns.flag)
            finally:
                os.close(fd)
    if plan.creates("user"):
        ctx.step = "open gate"
        ctx.gate = os.open(ctx.fifo_path, os.O_RDWR | os.O_CLOEXEC)
        ctx.step = "create user namespace"
        sc.unshare(0x10000000)
        send(ctx.conn, {"t": "map"})
        reply, _ = recv(ctx.conn)
        if reply is None or reply.get("t") != "mapped":
            raise OSError(5, "launcher did not write the id mappings")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for kind, fd in ctx.own_ns.items():
        flag = NAMESPACES[kind][0]
        if ctx.made_ns & flag and not plan.has(kind):
            ctx.step = f"leave the spare's {kind} namespace"
            sc.setns(fd, flag)
    flags = 0
    for ns in plan.namespaces:
        if ns.path is None and ns.kind != "user" and not (ctx.direct and ns.kind == "pid"):
            flags |= ns.flag
    ctx.step = "create namespaces"
    sc.unshare(flags & ~ctx.made_ns)
    if plan.creates("network") and not ctx.made_ns & NAMESPACES["network"][0]:
        ctx.step = "loopback up"  # a spare that made the namespace ahead brought lo up too
        sc.loopback_up()
    if plan.creates("user") and plan.creates("mount"):
        _receive_bind_sources(ctx)


def _receive_bind_sources(ctx: InitContext) -> None:
    """Have the launcher open each bind source inside our new mount namespace as the host's
    root (a mapped root may not be able to walk to it) and send the descriptors."""
    binds = [m.index for m in ctx.plan.mounts if m.options.is_bind]
    if not binds:
        return
    ctx.step = "open bind sources"
    send(ctx.conn, {"t": "sources"})
    reply, fds = recv(ctx.conn)
    if reply is None or reply.get("t") != "sources" or len(fds) != len(binds):
        for fd in fds:
            os.close(fd)
        reason = reply.get("reason") if reply else None
        raise OSError(errno.EACCES, f"cannot open the bind sources: {reason or 'no answer'}")
    ctx.bind_sources = dict(zip(binds, fds, strict=True))


def _init(ctx: InitContext) -> None:
    plan = ctx.plan
    in_userns = plan.has("user")
    ctx.step = "setsid"
    if os.getsid(0) != os.getpid():  # a spare of the zygote's became a session leader ahead
        os.setsid()
    ctx.step = "prepare rootfs"
    rootfs.prepare(plan)
    for m in plan.mounts:
        if m.fstype == "cgroup":
            _await_cgroups(ctx)
        ctx.step = f"mounts[{m.index}] {m.destination}"
        rootfs.do_mount(plan, m, ctx.cgroup_mounts, in_userns,
                        source_fd=ctx.bind_sources.pop(m.index, None))
    dirs = rootfs.DirFds(plan.rootfs)
    try:
        for dev in plan.devices:
            ctx.step = f"device {dev.path}"
            rootfs.make_device(dirs, dev, in_userns)
        ctx.step = "dev links"
        rootfs.dev_links(dirs)
    finally:
        dirs.close()
    if plan.hooks.get("create_runtime"):
        ctx.step = "createRuntime hooks"
        send(ctx.conn, {"t": "hooks"})
        reply, _ = recv(ctx.conn)
        if reply is None or reply.get("t") != "go":
            raise OSError(5, "createRuntime hooks failed in the launcher")
    if plan.hooks.get("create_container"):
        ctx.step = "createContainer hooks"
        # Before pivot_root /proc is still the host's, so /proc/self is our host pid.
        state = jsontext.loads(ctx.state_json)
        state["pid"] = int(os.readlink("/proc/self"))
        hookmod.run_hooks(plan.hooks["create_container"], jsontext.dumps(state).encode(),
                          what="createContainer")
    ctx.step = "open gate"
    # O_RDWR never blocks on a fifo and keeps it open for reading; start writes into it.
    gate = ctx.gate if ctx.gate is not None else os.open(ctx.fifo_path,
                                                          os.O_RDWR | os.O_CLOEXEC)
    if plan.no_pivot:
        ctx.step = "move root"
        rootfs.move_root(plan.rootfs)
    else:
        ctx.step = "pivot_root"
        rootfs.pivot(plan.rootfs)
    if plan.hostname is not None:
        ctx.step = "hostname"
        sc.sethostname(plan.hostname)
    if plan.domainname is not None:
        ctx.step = "domainname"
        sc.setdomainname(plan.domainname)
    proc = plan.process
    if proc.terminal:
        # As runc: before /dev or the root become read-only (/dev/console is made in /dev).
        ctx.step = "terminal"
        _terminal(ctx)
    # Before the read-only paths: /proc/sys becomes read-only there.
    ctx.step = "sysctl"
    rootfs.write_sysctls(plan)
    ctx.step = "masked and read-only paths"
    rootfs.finish(plan, in_userns)
    ctx.step = "rlimits"
    procmod.set_rlimits(proc)
    procmod.set_oom_score_adj(proc)
    ctx.step = "process.args"
    executable = procmod.find_executable(proc.args[0], proc.env)
    ctx.step = "report created"
    if ctx.direct:
        # From now on the container outlives the launcher: cleared before the report, or a
        # launcher that dies after create has returned could still take the container along.
        # (The setup child's death signal never reached an init it forked.)
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
    _await_cgroups(ctx)
    send(ctx.conn, {"t": "created"})
    # A launcher that dies before it has saved the container's state leaves nobody who knows
    # of this container: its socket closes and the init goes.
    reply, _ = recv(ctx.conn)
    if reply is None or reply.get("t") != "saved":
        os._exit(1)
    ctx.conn.close()
    # The gate: wait for start's message (the container state, for startContainer hooks).
    state = b""
    while not state:
        state = os.read(gate, MAX_MESSAGE)
    os.close(gate)
    try:
        # As runc: the startContainer hooks run as the process will, its user, capabilities
        # and seccomp filter in place, right before the exec.
        entered = procmod.become(proc)
        hookmod.run_hooks(plan.hooks.get("start_container", ()), state, what="startContainer")
        procmod.exec_process(proc, executable, cwd_entered=entered)
    except BaseException as exc:
        # Nobody listens any more: say it on the container's stderr, like a shell would.
        os.write(2, f"shoal runtime: start failed: {exc}\n".encode(errors="replace"))
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


def _terminal(ctx: InitContext) -> None:
    master = procmod.take_terminal(ctx.plan.process.console_size)
    name = os.ttyname(0)
    console = "/dev/console"
    if not os.path.lexists(console):
        os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    sc.mount(name, console, None, MS_BIND)
    send(ctx.conn, {"t": "pty", "name": name}, [master])
    os.close(master)
