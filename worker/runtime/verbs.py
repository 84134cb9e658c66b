"""The runtime's hot verbs (create, start, state, kill, delete, run) as plain functions, and
what every way of starting the runtime shares: the name the program answers to, a failure
said in one line, the log set-up. Nothing here imports click: ``worker.runtime.quick`` runs
these verbs without it, and ``worker.runtime.cli`` wraps them in click commands."""

from __future__ import annotations

import os
import sys

from worker.runtime.lazylog import DEBUG, WARNING, LazyLogger, configure_cli

# typing, and the runtime's operations, cost a runtime command milliseconds to import: the
# verbs that need the operations import them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from typing import NoReturn, TextIO

    from worker.runtime.ops import Runtime
else:
    import _signal as signal  # signal.py's C half: signal.py adds enums (enum costs milliseconds)

log = LazyLogger(__name__)

# A drop-in started under runc's name (an executable file named runc that runs the runtime)
# calls itself runc, as tools written for runc expect in its help and version text; the
# version it reports is still shoal's, and says so.
DROP_IN_NAME = "runc"
OWN_NAME = "shoal runtime"


def program_name() -> str:
    """``runc`` when started as a drop-in under that name, else ``shoal runtime``."""
    return DROP_IN_NAME if os.path.basename(sys.argv[0]) == DROP_IN_NAME else OWN_NAME


def fail(message: str, code: int = 1, *, logged: bool = False) -> NoReturn:
    """End the command: ``message`` on stderr, and as an event in the log file if ``logged``
    (there is a --log file)."""
    print(f"{program_name()}: {message}", file=sys.stderr, flush=True)
    if logged:
        log.error("runtime.failed", error=message)
    raise SystemExit(code)


def open_logging(debug: bool, log_path: str | None, log_format: str | None) -> TextIO | None:
    """Logging as the global flags ask: the --log file opened (line-buffered, so the events
    reach it even if the process is killed; the caller closes it) and returned, or None for
    stderr. OSError if the file cannot be opened."""
    stream = None
    if log_path is not None:
        stream = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    # stdout belongs to the containers and to `state`/`list`: logs go to stderr (or --log).
    # runc's flags get runc's text (under shoal's CLI too, which logs JSON lines when stderr
    # is not a terminal); without them the program's own format stays.
    default_format = "text" if log_path is not None or debug else None
    configure_cli(DEBUG if debug else WARNING, stream=stream,
                  log_format=log_format or default_format)
    return stream


def version_lines() -> list[str]:
    """What ``--version`` and ``version`` print: runc's lines (the commit only when known, as
    runc's), with shoal's numbers; under runc's name the first line says it is shoal's."""
    from protocol.version import PACKAGE_VERSION
    from worker.runtime.oci_version import OCI_VERSION

    name = program_name()
    first = f"{name} version {PACKAGE_VERSION}"
    if name != OWN_NAME:
        first += f" ({OWN_NAME})"  # Docker's parser takes what follows "version" as the version
    commit = source_commit()
    return [first, *([f"commit: {commit}"] if commit else []), f"spec: {OCI_VERSION}",
            f"python: {sys.version.split()[0]}"]


def source_commit() -> str | None:
    """The git commit of the source tree shoal runs from (``-dirty`` if it has changes), or
    None when it runs from an installed copy or git cannot say."""
    import subprocess  # only the version verbs get here

    tree = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(tree, ".git")):
        return None
    try:
        done = subprocess.run(["git", "-C", tree, "describe", "--always", "--dirty", "--long",
                               "--abbrev=40"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def version() -> None:
    """Print the runtime's version and the runtime-spec version it implements."""
    print("\n".join(version_lines()), flush=True)


def send_console(path: str, master: int) -> None:
    """Hand the pty master to whoever listens on --console-socket, as runc does."""
    import socket  # here: it imports enum and selectors, and most verbs have no console
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        socket.send_fds(s, [b"/dev/ptmx"], [master])


def write_pid(path: str | None, pid: int) -> None:
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)


def create(rt: Runtime, container_id: str, *, bundle: str = ".",
           console_socket: str | None = None, pid_file: str | None = None,
           no_pivot: bool = False) -> None:
    """Create a container; its process waits until start."""
    created = rt.create(container_id, bundle, no_pivot=no_pivot)
    if created.pty_master is not None:
        if console_socket:
            send_console(console_socket, created.pty_master)
        os.close(created.pty_master)
    write_pid(pid_file, created.record.pid)


def start(rt: Runtime, container_id: str) -> None:
    rt.start(container_id)


def state(rt: Runtime, container_id: str) -> None:
    """Print the container's runtime-spec state as indented JSON."""
    from worker.runtime.jsontext import dumps
    from worker.runtime.records import to_builtins

    print(dumps(to_builtins(rt.state(container_id)), indent=2), flush=True)


def kill(rt: Runtime, container_id: str, sig: str = "SIGTERM", *,
         all_processes: bool = False) -> None:
    rt.kill(container_id, sig, all_processes=all_processes)


def delete(rt: Runtime, container_id: str, *, force: bool = False) -> None:
    from worker.runtime.errors import ContainerNotFound

    try:
        rt.delete(container_id, force=force)
    except ContainerNotFound:
        if not force:  # as runc: --force of a container that is not there succeeds
            raise


def run(rt: Runtime, container_id: str, *, bundle: str = ".", detach: bool = False,
        console_socket: str | None = None, pid_file: str | None = None, keep: bool = False,
        no_pivot: bool = False) -> None:
    """Create, start and (unless ``detach``) wait for a container, delete it (unless
    ``keep``) and exit with its status."""
    from worker.runtime import syscalls as sc  # ctypes: only the verbs that fork need it

    # The init is reparented to us when its setup parent exits, so we can reap its status.
    sc.set_child_subreaper()
    created = rt.create(container_id, bundle, no_pivot=no_pivot)
    write_pid(pid_file, created.record.pid)
    master = created.pty_master
    if master is not None and (detach or console_socket):
        if console_socket:
            send_console(console_socket, master)
        os.close(master)
        master = None
    _forward_signals(rt, container_id)
    rt.start(container_id)
    if detach:
        return
    if master is not None:
        code = proxy_pty(master, created.record.pid)
        os.close(master)
    else:
        code = rt.wait(container_id)
    log.debug("container.exited", container_id=container_id, status=code)
    if not keep:
        rt.delete(container_id, force=True)
    sys.exit(code)


def _forward_signals(rt: Runtime, container_id: str) -> None:
    from protocol.errors import ShoalError

    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is not on a command's path
            rt.kill(container_id, signum)
        except ShoalError:
            pass  # gone already: nothing to forward to
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2):
        signal.signal(sig, forward)


def proxy_pty(master: int, pid: int) -> int:
    """Copy between our stdio and the container's pty until the process exits; its status."""
    import select
    import termios
    import tty

    from worker.runtime.ops import exit_code

    old = None
    if os.isatty(0):
        old = termios.tcgetattr(0)
        tty.setraw(0)
    pidfd = os.pidfd_open(pid)
    watched = [0, master, pidfd]
    try:
        while master in watched:
            ready, _, _ = select.select(watched, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave descriptor is closed
                    data = b""
                if data:
                    os.write(1, data)
                else:
                    watched.remove(master)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    watched.remove(0)  # our stdin ended; the process keeps its terminal
            if pidfd in ready and master not in ready:
                # Exited; whatever it wrote last is already in the pty buffer: drain it.
                _drain(master)
                break
    finally:
        os.close(pidfd)
        if old is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, old)
    _, status = os.waitpid(pid, 0)
    return exit_code(status)


def _drain(master: int) -> None:
    import select

    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        os.write(1, data)
