"""The parent side of create and exec: fork, drive the children's steps, unwind on failure.

Must run in a single-threaded process (the CLI, or the runtime helper): forking a process
with other threads could leave a lock held in the child forever. The one exception is
attach_warmup's thread, which holds no lock while it lives (see there).
"""

from __future__ import annotations

import _socket
import os

from worker.runtime import cgroups
from worker.runtime import hooks as hookmod
from worker.runtime import syscalls as sc
from worker.runtime.errors import BundleInvalid, CreateFailed, OperationFailed
from worker.runtime.init import InitContext, direct_main, recv, send, setup_main
from worker.runtime.lazylog import LazyLogger
from worker.runtime.paths import PathEscape, resolve_in_root
from worker.runtime.plan import NAMESPACES, Plan, ProcessPlan, SeccompFilter
from worker.runtime.planner import make_plan
from worker.runtime.procstat import wait_gone
from worker.runtime.records import Record, encode_json
from worker.runtime.spec import load_spec
from worker.runtime.state import (
    ExecDefaults,
    OciState,
    RuntimeRecord,
    SeccompRecord,
    StateDir,
    now_rfc3339,
    proc_start_time,
)

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    from collections.abc import Callable

    from worker.runtime.enter import ExecTarget

    # Forks a direct init elsewhere (the helper's zygote): its pid, or None to fork it here.
    Forker = Callable[[InitContext], int | None]
    # Clones an exec'd process elsewhere, straight into the container's pid namespace: its
    # pid, or None to fork it here.
    ExecCloner = Callable[[ExecTarget, ProcessPlan, _socket.socket, tuple[int, int, int]],
                          int | None]

if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # signal.py's C half: signal.py adds enums (enum costs milliseconds)

log = LazyLogger(__name__)

CREATE_TIMEOUT = 60.0


class Created(Record, frozen=False):
    record: RuntimeRecord
    pty_master: int | None


class Executed(Record, frozen=False):
    pid: int
    pty_master: int | None


def preflight(plan: Plan) -> None:
    """Checks against the filesystem before anything is created, each naming its field."""
    if not os.path.isdir(plan.rootfs):
        raise BundleInvalid("root.path", f"{plan.rootfs} is not a directory")
    for m in plan.mounts:
        try:
            resolve_in_root(plan.rootfs, m.destination)
        except PathEscape as exc:
            raise BundleInvalid(f"mounts[{m.index}].destination", str(exc)) from None
        if m.options.is_bind and not os.path.exists(m.source):
            raise BundleInvalid(f"mounts[{m.index}].source", f"{m.source} does not exist")
    for i, ns in enumerate(plan.namespaces):
        if ns.path is not None and not os.path.exists(ns.path):
            raise BundleInvalid(f"linux.namespaces[{i}].path", f"{ns.path} does not exist")


def _exec_defaults(proc: ProcessPlan) -> ExecDefaults:
    caps = None
    if proc.caps is not None:
        c = proc.caps
        caps = [c.bounding, c.effective, c.permitted, c.inheritable, c.ambient]
    return ExecDefaults(env=list(proc.env), cwd=proc.cwd, uid=proc.uid, gid=proc.gid,
                        additional_gids=list(proc.additional_gids), caps=caps,
                        no_new_privileges=proc.no_new_privileges, rlimits=list(proc.rlimits),
                        seccomp=_seccomp_record(proc.seccomp))


def _seccomp_record(flt: SeccompFilter | None) -> SeccompRecord | None:
    if flt is None:
        return None
    return SeccompRecord(program=flt.program, flags=flt.flags, digest=flt.digest)


def _kill_and_reap(pid: int) -> None:
    try:  # noqa: SIM105 - contextlib is not on a command's path
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        # Not our child (we are not its reaper): at least wait until it is dead.
        wait_gone(pid, None, 10.0)


def _kill_all(pids: list[int]) -> None:
    """Kill and reap each once: a pid reaped already may belong to someone else by now."""
    while pids:
        _kill_and_reap(pids.pop())


def create(root: str, container_id: str, bundle: str, *,
           stdio: tuple[int, int, int] = (0, 1, 2),
           hierarchies: list[cgroups.Hierarchy] | None = None,
           forker: Forker | None = None, no_pivot: bool = False) -> Created:
    """Create a container whose init waits at the gate; unwind everything if a step fails.
    ``hierarchies``: the cgroup hierarchies, if the caller already knows them; ``forker``:
    where to fork an init that needs no setup child, if not here; ``no_pivot``: enter the
    root with MS_MOVE and chroot instead of pivot_root."""
    bundle = os.path.abspath(bundle)
    # A dot name is never a container id: `list` does not take the cache for a container.
    plan = make_plan(load_spec(bundle), bundle,
                     seccomp_cache_dir=os.path.join(root, ".seccomp"))
    if no_pivot:
        plan = plan.replace(no_pivot=True)
    preflight(plan)
    if hierarchies is None:
        hierarchies = cgroups.discover()
    dirs = cgroups.container_dirs(hierarchies, plan.cgroups_path, container_id)
    if dirs and dirs[0][0].unified:
        cgroups.v2_writes(plan.resources)
    else:
        cgroups.v1_writes(plan.resources)
    sd = StateDir(root, container_id)
    sd.make()
    # What to undo, last first, if a step fails (no contextlib.ExitStack: contextlib imports
    # collections and functools, milliseconds of a runtime command).
    undo: list[Callable[[], object]] = [sd.remove]
    try:
        made: list[str] = []
        undo.append(lambda: cgroups.remove(made))
        late_cgroups = _late_cgroups(plan)
        if not late_cgroups:
            _make_cgroups(dirs, plan, made)
        cg_dirs = [d for _h, d in dirs]
        cg_mounts = {",".join(sorted(c.removeprefix("name=") for c in h.controllers)): d
                     for h, d in dirs if not h.unified}
        state_json = encode_json(OciState(
            oci_version="1.0.2", id=container_id, status="creating", pid=0, bundle=bundle,
            annotations=plan.annotations))
        parent_sock, child_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        undo.append(parent_sock.close)
        ctx = InitContext(container_id=container_id, plan=plan, conn=child_sock,
                          fifo_path=sd.fifo, stdio=stdio,
                          cgroup_procs=cgroups.procs_files(cg_dirs), cgroup_mounts=cg_mounts,
                          state_json=state_json)
        ctx.direct = _direct(plan)
        ctx.late_cgroups = late_cgroups
        # runc's debug messages for the same milestones, for whoever reads runc's logs.
        log.debug("nsexec container setup", container_id=container_id)
        setup_pid = _fork_direct(ctx, parent_sock, forker) if ctx.direct else os.fork()
        if setup_pid == 0:
            parent_sock.close()
            setup_main(ctx)
        child_sock.close()
        if not ctx.direct:  # else the setup child is the init, in pids
            undo.append(lambda: _kill_and_reap(setup_pid))
        pids: list[int] = [setup_pid] if ctx.direct else []
        # Registered before _drive: a failing init must be killed and reaped before its
        # cgroup can be removed (even a zombie keeps a v1 cgroup busy).
        undo.append(lambda: _kill_all(pids))
        if late_cgroups:
            # While the init creates its namespaces and builds its root. Moving a process into
            # a cgroup waits for an RCU grace period on a host that made no move lately
            # (milliseconds; runc waits for it too): the init's work goes on meanwhile. The
            # move is complete before _drive reads the init's report, so before start.
            _make_cgroups(dirs, plan, made)
            try:  # noqa: SIM105 - contextlib is not on a command's path
                send(parent_sock, {"t": "cgroups"})
            except OSError:
                pass  # an init that failed first: _drive says why
            _move_into_cgroups(setup_pid, ctx.cgroup_procs)
        staged: tuple[RuntimeRecord, str] | None = None
        if ctx.direct:
            # The init's pid is known already: its record is written aside while the init
            # builds its root, and put in place once the init has reported.
            early = proc_start_time(setup_pid)
            if early is not None:
                record = _record(container_id, setup_pid, early, bundle, plan, cg_dirs, made)
                staged = (record, _stage_record(sd, record))
        init_pid, pty = _drive(parent_sock, plan, setup_pid, container_id, bundle, pids)
        if pty is not None:
            undo.append(lambda: os.close(pty))
        start = proc_start_time(init_pid)
        if start is None:
            raise CreateFailed("init", "the container's init exited during create")
        try:
            if staged is not None and (staged[0].pid, staged[0].pid_start) == (init_pid, start):
                record = staged[0]
                sd.commit(staged[1])
            else:
                record = _record(container_id, init_pid, start, bundle, plan, cg_dirs, made)
                sd.save(record)
        except OSError as exc:
            raise CreateFailed("save state", str(exc)) from exc
    except BaseException:
        _unwind(undo)
        raise
    try:  # noqa: SIM105 - contextlib is not on a command's path
        send(parent_sock, {"t": "saved"})
    except OSError:
        pass  # an init that died already is seen as stopped
    parent_sock.close()
    return Created(record, pty)


def _record(container_id: str, pid: int, start: int, bundle: str, plan: Plan,
            cgroup_dirs: list[str], made: list[str]) -> RuntimeRecord:
    """What the runtime keeps of a created container (its state.json)."""
    return RuntimeRecord(
        id=container_id, pid=pid, pid_start=start, bundle=bundle, rootfs=plan.rootfs,
        created=now_rfc3339(), annotations=plan.annotations, cgroup_dirs=cgroup_dirs,
        cgroup_made=list(made), namespaces=[NAMESPACES[ns.kind][1] for ns in plan.namespaces],
        owns_pid_ns=plan.has("pid"), poststart=list(plan.hooks.get("poststart", ())),
        poststop=list(plan.hooks.get("poststop", ())),
        exec_defaults=_exec_defaults(plan.process))


def _stage_record(sd: StateDir, record: RuntimeRecord) -> str:
    try:
        return sd.stage(record)
    except OSError as exc:
        raise CreateFailed("save state", str(exc)) from exc


def _unwind(undo: list[Callable[[], object]]) -> None:
    """Run the undo steps, last first; one that fails does not keep the others from running
    (the error that made us unwind is the one to report)."""
    while undo:
        try:
            undo.pop()()
        except Exception as exc:
            log.warning("create.undo_failed", error=str(exc))


def _make_cgroups(dirs: list[tuple[cgroups.Hierarchy, str]], plan: Plan,
                  made: list[str]) -> None:
    try:
        made.extend(cgroups.create(dirs, plan.resources))
    except OSError as exc:
        raise CreateFailed("cgroups", str(exc)) from exc


def _move_into_cgroups(pid: int, procs_files: list[str]) -> None:
    """Move ``pid`` into the cgroups (their cgroup.procs files); an init that has died already
    is left for _drive to report."""
    try:
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)
    except ProcessLookupError:
        return
    except OSError as exc:
        raise CreateFailed("join cgroups", str(exc)) from exc


def _late_cgroups(plan: Plan) -> bool:
    """Whether the launcher may make the cgroups and move the init into them while the init
    creates its namespaces and builds its root: a direct init, and nothing that needs the
    cgroups joined first (a cgroup namespace; a mount namespace joined by path, where the
    host's cgroup paths may not be; createContainer hooks, processes the init starts)."""
    return _direct(plan) and not plan.has("cgroup") and not plan.hooks.get(
        "create_container") and not any(
        ns.kind == "mount" and ns.path is not None for ns in plan.namespaces)


def _direct(plan: Plan) -> bool:
    """Whether the init can be forked straight into its new pid namespace, without a setup
    child: not when a user namespace must own the others, nor for a pid namespace joined by
    path."""
    return not plan.has("user") and not any(ns.kind == "pid" and ns.path is not None
                                            for ns in plan.namespaces)


def _fork_direct(ctx: InitContext, parent_sock: _socket.socket, forker: Forker | None) -> int:
    """Fork the container's init itself (one fork instead of two): ``unshare(CLONE_NEWPID)``
    moves only this process's future children into a new pid namespace, and setting our own
    pid namespace back right after the fork undoes that for the launcher. Returns the pid."""
    if forker is not None:
        pid = forker(ctx)
        if pid is not None:
            return pid
    if not ctx.plan.creates("pid"):
        pid = os.fork()
        if pid == 0:
            parent_sock.close()
            direct_main(ctx)
        return pid
    flag = NAMESPACES["pid"][0]
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            sc.unshare(flag)
        except OSError as exc:
            raise CreateFailed("create namespaces", str(exc)) from exc
        try:
            pid = os.fork()
            if pid == 0:
                parent_sock.close()
                direct_main(ctx)
        finally:
            sc.setns(own, flag)
    finally:
        os.close(own)
    return pid


def _drive(conn: _socket.socket, plan: Plan, setup_pid: int, container_id: str,
           bundle: str, pids: list[int]) -> tuple[int, int | None]:
    """Answer the children's requests until the init reports created (or something failed);
    ``pids`` already holds the init's pid when the launcher forked it directly."""
    conn.settimeout(CREATE_TIMEOUT)
    init_pid = pids[0] if pids else 0
    pty: int | None = None
    while True:
        try:
            msg, fds = recv(conn)
        except TimeoutError:
            raise CreateFailed("timeout", f"no progress within {CREATE_TIMEOUT}s") from None
        if msg is None:
            status = 0
            if init_pid in (0, setup_pid):
                _, status = os.waitpid(setup_pid, 0)
                if setup_pid in pids:
                    pids.remove(setup_pid)
            raise CreateFailed("init", f"exited before reporting (wait status {status})")
        kind = msg.get("t")
        if kind == "map":
            try:
                with open(f"/proc/{setup_pid}/uid_map", "w") as f:
                    f.write(plan.uid_map)
                with open(f"/proc/{setup_pid}/gid_map", "w") as f:
                    f.write(plan.gid_map)
            except OSError as exc:
                raise CreateFailed("write id mappings", str(exc)) from exc
            send(conn, {"t": "mapped"})
        elif kind == "sources":
            _open_bind_sources(conn, plan, setup_pid)
        elif kind == "pid":
            pid = msg.get("pid")
            assert isinstance(pid, int)
            init_pid = pid
            pids.append(pid)
            os.waitpid(setup_pid, 0)
        elif kind == "hooks":
            state = encode_json(OciState(
                oci_version="1.0.2", id=container_id, status="creating", pid=init_pid,
                bundle=bundle, annotations=plan.annotations))
            try:
                hookmod.run_hooks(plan.hooks.get("create_runtime", ()), state,
                                  what="createRuntime")
            except hookmod.HookFailed as exc:
                raise CreateFailed("createRuntime hooks", str(exc)) from exc
            send(conn, {"t": "go"})
        elif kind == "pty":
            pty = fds[0]
        elif kind == "created":
            log.debug("child process in init()", pid=init_pid)
            log.debug("init: closing the pipe to signal completion", pid=init_pid)
            return init_pid, pty
        elif kind == "error":
            if pty is not None:
                os.close(pty)
            raise CreateFailed(str(msg.get("step")), str(msg.get("reason")),
                               errno=str(msg.get("errno") or ""))


def _open_bind_sources(conn: _socket.socket, plan: Plan, setup_pid: int) -> None:
    """A child of ours enters the setup child's new mount namespace as the host's root, opens
    each bind source there (O_PATH) and sends the descriptors to the setup child: the
    container's mapped root may not be allowed to walk to a source (runc's mount fds). A
    child, because setns into a mount namespace needs a process sharing no fs state."""
    pid = os.fork()
    if pid == 0:
        try:
            try:
                fd = os.open(f"/proc/{setup_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
                sc.setns(fd, NAMESPACES["mount"][0])
                fds = [os.open(m.source, os.O_PATH | os.O_CLOEXEC)
                       for m in plan.mounts if m.options.is_bind]
            except OSError as exc:
                send(conn, {"t": "failed", "reason": f"{exc.filename}: {exc.strerror}"})
            else:
                send(conn, {"t": "sources"}, fds)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def exec_in(record: RuntimeRecord, proc: ProcessPlan, *,
            stdio: tuple[int, int, int] = (0, 1, 2),
            cloner: ExecCloner | None = None,
            cgroup_dirs: list[str] | None = None) -> Executed:
    """Start ``proc`` inside a running container; returns its pid once it has exec'd, and the
    master of its pty when ``proc.terminal`` asks for one. ``cloner``: where to clone it
    straight into the container's pid namespace (the helper's zygote), if not forked here;
    ``cgroup_dirs``: sub-cgroups of the container's to join instead of its own."""
    if proc_start_time(record.pid) != record.pid_start:
        raise OperationFailed(f"container {record.id!r} is not running")
    from worker.runtime import enter
    from worker.runtime.enter import ExecTarget

    target = ExecTarget(container_id=record.id, pid=record.pid, pid_start=record.pid_start,
                        namespaces=tuple(record.namespaces),
                        cgroup_dirs=tuple(cgroup_dirs or record.cgroup_dirs))
    log.debug("nsexec container setup", container_id=record.id)
    parent_sock, child_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    forked = 0
    try:
        pid = cloner(target, proc, child_sock, stdio) if cloner is not None else None
        if pid is None:
            forked = os.fork()
            if forked == 0:
                parent_sock.close()
                enter.forked_main(target, proc, child_sock, stdio)
        child_sock.close()
        parent_sock.settimeout(CREATE_TIMEOUT)
        pty: int | None = None
        while True:
            msg, fds = recv(parent_sock)
            if msg is None:
                break
            if msg.get("t") == "pty" and fds:
                pty = fds[0]
            elif msg.get("t") == "pid":
                value = msg.get("pid")
                assert isinstance(value, int)
                pid = value
            elif msg.get("t") == "error":
                if pid:
                    _kill_and_reap(pid)
                if pty is not None:
                    os.close(pty)
                raise OperationFailed(f"exec failed at step {msg.get('step')!r}: "
                                      f"{msg.get('reason')}",
                                      details={"step": str(msg.get("step"))})
    finally:
        child_sock.close()
        parent_sock.close()
        if forked:
            try:  # noqa: SIM105 - contextlib is not on a command's path
                os.waitpid(forked, 0)
            except ChildProcessError:
                pass
    if not pid:
        if pty is not None:
            os.close(pty)
        raise OperationFailed("exec: the helper exited without starting the process")
    # runc's debug messages for the same milestones (runc's exec.bats looks for them).
    log.debug("child process in init()", pid=pid)
    log.debug("setns_init: about to exec", pid=pid)
    return Executed(pid, pty)
