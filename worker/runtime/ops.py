"""Container operations over the state directory: create, start, state, kill, pause, resume,
delete, wait, exec, list, ps. This is the library API; forks happen in ``launcher`` and need a
single-threaded caller (the CLI, or the helper behind ``worker.runtime.client``).
"""

from __future__ import annotations

import builtins
import os

from protocol import signals
from protocol.errors import InvalidArgument
from worker.runtime import cgroups, freezer
from worker.runtime import hooks as hookmod
from worker.runtime.errors import CreateFailed, OperationFailed, WrongState
from worker.runtime.lazylog import LazyLogger
from worker.runtime.procstat import wait_gone
from worker.runtime.records import encode_json
from worker.runtime.state import (
    ExitRecord,
    OciState,
    RuntimeRecord,
    StateDir,
    proc_start_time,
)

TYPE_CHECKING = False  # typing and pathlib cost a runtime command milliseconds to import
if TYPE_CHECKING:
    import signal
    from pathlib import Path

    # The launcher (the planner, the init, the mounts: ~15 ms of imports) is imported by the
    # operations that fork or wait for a death, so that `shoal runtime state`, `start` and
    # `kill` do not pay for it.
    from worker.runtime import launcher
else:
    import _signal as signal  # signal.py's C half: signal.py adds enums (enum costs milliseconds)

log = LazyLogger(__name__)

DEFAULT_ROOT = "/run/shoal/runtime"
KILL_TIMEOUT = 10.0


def parse_signal(value: str | int) -> int:
    """A signal given as a number, "KILL" or "SIGKILL" (the runtime's own error if not); 0,
    as for kill(2), only checks that the process is there (runc takes it too)."""
    if value in (0, "0"):
        return 0
    try:
        return signals.parse_signal(value)
    except InvalidArgument as exc:
        raise OperationFailed(str(exc)) from None


class Runtime:
    """The native OCI runtime over one root directory of container state."""

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.root = os.fspath(root)
        # Read once: cgroup hierarchies are mounted at boot, and our own cgroup stays put.
        self._hierarchies: builtins.list[cgroups.Hierarchy] | None = None
        # Where inits are forked when they can be forked directly (the helper's zygote).
        self.forker: launcher.Forker | None = None
        # Where exec'd processes are cloned straight into their container (the same zygote).
        self.exec_cloner: launcher.ExecCloner | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def create(self, container_id: str, bundle: str, *,
               stdio: tuple[int, int, int] = (0, 1, 2),
               no_pivot: bool = False) -> launcher.Created:
        from worker.runtime import launcher

        if self._hierarchies is None:
            self._hierarchies = cgroups.discover()
        try:
            created = launcher.create(self.root, container_id, bundle, stdio=stdio,
                                      hierarchies=self._hierarchies, forker=self.forker,
                                      no_pivot=no_pivot)
        except CreateFailed as exc:
            if exc.step == "cgroups":
                self._hierarchies = None  # perhaps the hierarchies did change: read them again
            log.debug("container.create_failed", container_id=container_id, error=str(exc))
            raise
        log.debug("container.created", container_id=container_id, pid=created.record.pid,
                  bundle=bundle, cgroups=created.record.cgroup_dirs)
        return created

    def start(self, container_id: str) -> None:
        sd = StateDir(self.root, container_id)
        record = sd.load()
        status = sd.status(record)
        if status != "created":
            raise WrongState(f"container {container_id!r} is {status}, not created")
        state = encode_json(sd.oci_state(record, status="running"))
        try:
            fd = os.open(sd.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            # ENXIO: nobody has the fifo open for reading, the init is gone.
            raise OperationFailed(f"start {container_id!r}: the init is not waiting ({exc})",
                                  details={"errno": str(exc.errno)}) from exc
        try:
            os.write(fd, state)
        finally:
            os.close(fd)
        os.unlink(sd.fifo)
        log.debug("container.started", container_id=container_id, pid=record.pid)
        for i, hook in enumerate(record.poststart):
            try:
                hookmod.run_hook(hook, state, what=f"poststart[{i}]")
            except hookmod.HookFailed as exc:
                # The spec: a failing poststart hook is a warning, the container keeps running.
                log.warning("hook.poststart_failed", container_id=container_id, error=str(exc))

    def state(self, container_id: str) -> OciState:
        sd = StateDir(self.root, container_id)
        return sd.oci_state(sd.load())

    def record(self, container_id: str) -> RuntimeRecord:
        return StateDir(self.root, container_id).load()

    def kill(self, container_id: str, sig: str | int = signal.SIGTERM, *,
             all_processes: bool = False) -> None:
        sd = StateDir(self.root, container_id)
        record = sd.load()
        status = sd.status(record)
        # As runc, --all also reaches what may be left in a stopped container's cgroup.
        if status not in ("created", "running", "paused") and not (
                all_processes and status == "stopped"):
            raise WrongState(f"container {container_id!r} is {status}")
        number = parse_signal(sig)
        log.debug("container.signal", container_id=container_id, signal=number,
                  all_processes=all_processes)
        if all_processes:
            for pid in cgroups.pids_in(record.cgroup_dirs):
                _kill(pid, number)
        else:
            self._signal_init(record, number)
        if status == "paused" and number == signal.SIGKILL:
            # A frozen task acts on no signal, not even SIGKILL, until it is thawed.
            self._thaw(record)

    def pause(self, container_id: str) -> None:
        """Freeze every process of a created or running container."""
        sd = StateDir(self.root, container_id)
        record = sd.load()
        status = sd.status(record)
        if status not in ("created", "running"):
            raise WrongState(f"container not running ({container_id!r} is {status})")
        found = freezer.find(record.cgroup_dirs)
        if found is None:
            raise OperationFailed(f"pause {container_id!r}: no freezer cgroup is mounted")
        freezer.freeze(found)
        log.debug("container.paused", container_id=container_id, freezer=found.path)

    def resume(self, container_id: str) -> None:
        """Thaw a paused container."""
        sd = StateDir(self.root, container_id)
        record = sd.load()
        status = sd.status(record)
        if status != "paused":
            raise WrongState(f"container not paused ({container_id!r} is {status})")
        self._thaw(record)
        log.debug("container.resumed", container_id=container_id)

    def _thaw(self, record: RuntimeRecord) -> None:
        found = freezer.find(record.cgroup_dirs)
        if found is not None and freezer.is_frozen(found):
            freezer.thaw(found)

    def _signal_init(self, record: RuntimeRecord, number: int) -> None:
        # A pidfd pins the process: checking its start time through it and signalling through
        # it cannot hit a recycled pid.
        try:
            fd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            return
        try:
            if proc_start_time(record.pid) != record.pid_start:
                return
            signal.pidfd_send_signal(fd, number)
        except ProcessLookupError:
            return
        finally:
            os.close(fd)

    def wait(self, container_id: str) -> int:
        """Exit status of the init: the caller must be its parent (reaper) or have saved it."""
        sd = StateDir(self.root, container_id)
        saved = sd.load_exit()
        if saved is None:
            record = sd.load()
            try:
                _, status = os.waitpid(record.pid, 0)
            except ChildProcessError:
                saved = sd.load_exit()
            else:
                saved = exit_record(status)
                sd.save_exit(saved)
        if saved is None or saved.status is None:
            raise OperationFailed(f"the exit status of {container_id!r} is not known")
        return saved.status

    def delete(self, container_id: str, *, force: bool = False) -> None:

        sd = StateDir(self.root, container_id)
        record = sd.load()
        status = sd.status(record)
        if status != "stopped" and not force:
            raise WrongState(f"container {container_id!r} is {status}; stop it or use force")
        if status != "stopped":
            self._signal_init(record, signal.SIGKILL)
        if not record.owns_pid_ns:
            # Without a pid namespace of its own, the init's death does not take the rest.
            for pid in cgroups.pids_in(record.cgroup_dirs):
                _kill(pid, signal.SIGKILL)
        # Frozen processes die only once thawed.
        self._thaw(record)
        if not wait_gone(record.pid, record.pid_start, KILL_TIMEOUT):
            raise OperationFailed(f"container {container_id!r} did not die within "
                                  f"{KILL_TIMEOUT}s")
        # Reap it if it is ours, so it does not stay a zombie holding the cgroup.
        try:
            reaped, wstatus = os.waitpid(record.pid, os.WNOHANG)
        except ChildProcessError:
            reaped = 0
        if reaped:
            sd.save_exit(exit_record(wstatus))
        self._remove_cgroups(record)
        state = encode_json(sd.oci_state(record, status="stopped")) if record.poststop else b""
        for i, hook in enumerate(record.poststop):
            try:
                hookmod.run_hook(hook, state, what=f"poststop[{i}]")
            except hookmod.HookFailed as exc:
                log.warning("hook.poststop_failed", container_id=container_id, error=str(exc))
        sd.remove()
        log.debug("container.deleted", container_id=container_id)

    def _remove_cgroups(self, record: RuntimeRecord) -> None:
        try:
            cgroups.remove(record.cgroup_made)  # not a cgroup it joined
        except OSError as exc:
            raise OperationFailed(f"remove cgroups of {record.id!r}: {exc}") from exc

    # --- inspection ---------------------------------------------------------------------------
    def list(self) -> builtins.list[OciState]:
        result: builtins.list[OciState] = []
        if not os.path.isdir(self.root):
            return result
        for name in sorted(os.listdir(self.root)):
            try:
                sd = StateDir(self.root, name)
                result.append(sd.oci_state(sd.load()))
            except Exception:
                continue
        return result

    def ps(self, container_id: str) -> builtins.list[int]:
        return cgroups.pids_in(StateDir(self.root, container_id).load().cgroup_dirs)

    # --- exec ---------------------------------------------------------------------------------
    def exec(self, container_id: str, args: builtins.list[str], *,
             env: builtins.list[str] | None = None,
             cwd: str | None = None, uid: int | None = None, gid: int | None = None,
             tty: bool = False, console_size: tuple[int, int] | None = None,
             stdio: tuple[int, int, int] = (0, 1, 2),
             additional_gids: builtins.list[int] | None = None, preserve_fds: int = 0,
             ignore_paused: bool = False,
             cgroups: builtins.list[str] | None = None) -> launcher.Executed:
        """Run a process in a created or running container's namespaces and cgroup: its pid, and the
        master of its new pty with ``tty`` (then ``stdio`` is not used), of ``console_size``
        (rows, cols) from the start. ``additional_gids`` replace the init's supplementary
        groups; ``preserve_fds``: descriptors 3 .. 3+N-1 of this process are passed on (when
        forked here, not through a cloner); ``ignore_paused``: a paused container is entered
        too (the process stays frozen until it is resumed); ``cgroups``: runc's ``exec
        --cgroup`` requests, sub-cgroups of the container's to join instead."""
        from worker.runtime import launcher
        from worker.runtime.plan import CapSets, ProcessPlan, SeccompFilter

        if not args:
            raise OperationFailed("exec needs a program to run")
        sd = StateDir(self.root, container_id)
        record = sd.load()
        status = sd.status(record)
        if status == "paused" and not ignore_paused:
            raise WrongState(f"cannot exec in a paused container ({container_id!r})")
        # A created container's init waits at the gate in its finished root: runc enters it.
        if status not in ("created", "running", "paused"):
            raise WrongState(f"container {container_id!r} is {status}, not running")
        if preserve_fds and self.exec_cloner is not None:
            raise OperationFailed("preserve_fds needs the process forked by the caller")
        d = record.exec_defaults
        caps = CapSets(*d.caps) if d.caps is not None else None
        proc = ProcessPlan(
            args=tuple(args), env=tuple(env if env is not None else d.env),
            cwd=cwd or d.cwd, uid=d.uid if uid is None else uid,
            gid=d.gid if gid is None else gid,
            additional_gids=tuple(d.additional_gids if additional_gids is None
                                  else additional_gids),
            umask=None, rlimits=tuple(tuple(r) for r in d.rlimits),  # type: ignore[misc]
            caps=caps, no_new_privileges=d.no_new_privileges, terminal=tty,
            oom_score_adj=None, console_size=console_size if tty else None,
            seccomp=SeccompFilter(d.seccomp.program, d.seccomp.flags, d.seccomp.digest)
            if d.seccomp is not None else None, preserve_fds=preserve_fds)
        cgroup_dirs = None
        if cgroups:
            from worker.runtime import cgroups as cgroupmod
            cgroup_dirs = cgroupmod.exec_dirs(record.cgroup_dirs, cgroupmod.discover(), cgroups)
        return launcher.exec_in(record, proc, stdio=stdio, cloner=self.exec_cloner,
                                cgroup_dirs=cgroup_dirs)


def _kill(pid: int, number: int) -> None:
    try:  # noqa: SIM105 - contextlib is not on a command's path
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def exit_record(wait_status: int) -> ExitRecord:
    signum = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
    return ExitRecord(exit_code(wait_status), signum)


def exit_code(wait_status: int) -> int:
    """A shell-style exit code: the exit status, or 128 + the signal that killed it."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)
