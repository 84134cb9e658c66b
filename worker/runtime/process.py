"""The last steps before exec, shared by a container's init and by exec: identity, caps, exec.

Runs in a forked, single-threaded child that is already inside the container's namespaces and
root. Nothing here returns on success: the process becomes the container's program.
"""

from __future__ import annotations

import errno
import os

from worker.runtime import caps as capmod
from worker.runtime import syscalls as sc
from worker.runtime.plan import ProcessPlan


def import_needed(proc: ProcessPlan) -> None:
    """Import the modules ``proc``'s steps need that a runtime command does not import up
    front (most containers have no terminal and no rlimits), while the host's root is still
    this process's: after pivot_root (an init) or joining the container's mount namespace
    (exec), Python finds no modules."""
    if proc.rlimits:
        import resource  # noqa: F401
    if proc.terminal:
        import fcntl  # noqa: F401
        import struct  # noqa: F401
        import termios  # noqa: F401


def find_executable(arg0: str, env: tuple[str, ...]) -> str:
    """The path execve gets: arg0 itself when it has a slash, else a search of the env's PATH."""
    if "/" in arg0:
        if not os.path.exists(arg0):
            raise FileNotFoundError(errno.ENOENT, f'exec: "{arg0}": no such file or directory')
        if os.path.isdir(arg0) or not os.access(arg0, os.X_OK):
            raise PermissionError(errno.EACCES, f'exec: "{arg0}": permission denied')
        return arg0
    path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/bin:/bin")
    for d in path.split(":"):
        candidate = os.path.join(d or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(errno.ENOENT,
                            f'exec: "{arg0}": executable file not found in $PATH ({path})')


def take_terminal(size: tuple[int, int] | None = None) -> int:
    """Open a pty in this mount namespace's devpts and make its slave our controlling terminal
    and stdio (the caller is a session leader); returns the master for whoever drives it.
    ``size`` (rows, cols) is set first, so the program never sees a 0x0 terminal."""
    # Imported here: most containers have no terminal.
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    fcntl.ioctl(slave, sc.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
    return master


def set_rlimits(proc: ProcessPlan) -> None:
    if not proc.rlimits:
        return
    import resource  # here: most configs set none

    for res, soft, hard in proc.rlimits:
        resource.setrlimit(res, (soft, hard))


def set_oom_score_adj(proc: ProcessPlan) -> None:
    if proc.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc.oom_score_adj))


def become(proc: ProcessPlan) -> bool:
    """Switch to the process's user, groups and capability sets; set no_new_privs; load the
    seccomp filter. Returns whether the cwd was entered already: as runc, it is tried first
    with the runtime's privileges (a directory the process's user cannot reach still works),
    and else by ``exec_process`` as that user.

    As runc: without no_new_privs, loading a filter needs CAP_SYS_ADMIN, so it is loaded first,
    while the process still has every capability; with no_new_privs it is loaded last, so the
    profile has to allow as few of the runtime's own calls as possible (those left: umask,
    chdir, close_range, execve)."""
    try:
        os.chdir(proc.cwd)
        entered = True
    except OSError:
        entered = False
    if proc.seccomp is not None and not proc.no_new_privileges:
        sc.seccomp_set_filter(proc.seccomp.program, proc.seccomp.flags)
    caps = proc.caps
    if caps is not None:
        for n in range(capmod.last_cap() + 1):
            if not caps.bounding & (1 << n):
                sc.prctl(sc.PR_CAPBSET_DROP, n)
        # Keep the permitted set across the uid change; capset below sets the exact sets.
        sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    _own_terminal(proc.uid)
    os.setgroups(list(proc.additional_gids))
    os.setresgid(proc.gid, proc.gid, proc.gid)
    os.setresuid(proc.uid, proc.uid, proc.uid)
    if caps is not None:
        sc.capset(caps.effective, caps.permitted, caps.inheritable)
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
        for n in range(capmod.last_cap() + 1):
            # The kernel refuses an ambient cap absent from permitted or inheritable; such an
            # entry is dropped, as other runtimes do, rather than failing the container.
            if caps.ambient & caps.permitted & caps.inheritable & (1 << n):
                sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, n)
        sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    if proc.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if proc.seccomp is not None:
            sc.seccomp_set_filter(proc.seccomp.program, proc.seccomp.flags)
    return entered


def _own_terminal(uid: int) -> None:
    """As runc: a terminal on stdio becomes the process's user's, so that a non-root process
    can use its console; the group stays (devpts gives the tty group). Only terminals: a pipe
    or file handed in by the caller keeps its owner."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.fstat(fd).st_uid != uid:
                os.fchown(fd, uid, -1)
        except OSError as exc:
            # EINVAL/EPERM: the owner is not mapped in our user namespace; leave it as is.
            if exc.errno not in (errno.EINVAL, errno.EPERM, errno.EBADF):
                raise


def exec_process(proc: ProcessPlan, executable: str, *, cwd_entered: bool = False) -> None:
    """Enter the cwd (unless ``become`` has), close every inherited descriptor past stdio and
    exec; raises OSError if exec fails."""
    if proc.umask is not None:
        os.umask(proc.umask)
    else:
        os.umask(0o022)
    if not cwd_entered:
        os.chdir(proc.cwd)
    sc.close_from(3 + proc.preserve_fds)
    env = dict(e.split("=", 1) for e in proc.env)
    os.execve(executable, list(proc.args), env)
