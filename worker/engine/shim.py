"""The process driver's per-container shim: runs one command, keeps its logs and its exit code.

``python -m worker.engine.shim SPEC_JSON`` starts the command in its own session, copies its
stdout and stderr into the container's json-file log, and when it ends writes ``exit.json``
atomically. The shim outlives the worker that started it, so a worker killed with SIGKILL loses
neither the container, nor its output, nor its exit code (live restore). For ``run -t`` it holds
the container's pty master (its output goes to the log as stdout), for ``run -i`` the write end
of its stdin, and hands them to workers through a control socket (``shim_control``), so the
container keeps its terminal and its stdin across worker restarts too. Portable: what differs
between hosts goes through ``worker.hostos.HOST`` (a process group or a job object holds the
command's processes; on Windows the output is copied on threads, since pipes cannot be
polled there); ptys and the control socket need Unix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import msgspec

from protocol.specs import Ulimit
from worker.engine.logfile import JsonFileLog, Stream
from worker.engine.shim_control import CLOSE_STDIN, ControlServer
from worker.hostos import HOST, Confinement, JobLimits, PopenOptions


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ShimSpec(msgspec.Struct, frozen=True):
    """What the driver asks the shim to run; passed as JSON in argv. With ``tty`` the command
    gets a pty (of ``console_size`` rows, cols) on stdin, stdout and stderr; with
    ``stdin_open`` (and no tty) a stdin pipe. Either way the shim holds our end and hands it to
    workers through its control socket (``shim_control``)."""

    argv: list[str]
    env: dict[str, str]
    state_dir: str
    log_path: str
    cwd: str = ""
    max_size: int = 0
    max_file: int = 1
    compress: bool = False
    tty: bool = False
    stdin_open: bool = False
    console_size: tuple[int, int] | None = None
    container_id: str = ""  # names the container's job object on Windows
    limits: JobLimits = JobLimits()  # a cgroup's (Linux) or a job's (Windows)
    ulimits: list[Ulimit] = []  # set between fork and exec (POSIX)


# Run with a pty: in its own session (start_new_session), take the pty on stdin as the
# controlling terminal, then become the command. Inline, so no import path is needed.
TTY_LAUNCH = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "try:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'shoal: cannot run {sys.argv[1]}: {exc.strerror}\\r\\n')\n"
    "    sys.exit(126 if exc.errno == 13 else 127)\n"
)


def on_terminal(argv: list[str]) -> list[str]:
    """``argv`` run by TTY_LAUNCH: started in a new session with a pty on its stdio, it makes
    that pty its controlling terminal (job control, ^C) and execs the command in place."""
    return [sys.executable, "-I", "-c", TTY_LAUNCH, *argv]


def _ready() -> None:
    """Tell the driver (reading our stdout) that pid.json or exit.json is written, then let
    go of that pipe: a worker that dies later must not take us down with a SIGPIPE."""
    with contextlib.suppress(OSError):
        os.write(1, b"ready\n")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def with_ulimits(options: PopenOptions, ulimits: list[Ulimit]) -> PopenOptions:
    """``options`` whose child also sets ``ulimits`` on itself before it execs (after it has
    entered its cgroup): what it runs, and everything that starts, inherits them."""
    if not ulimits:
        return options
    import resource  # POSIX only: a host without it refuses --ulimit before a shim starts

    wanted = [(getattr(resource, f"RLIMIT_{limit.name.upper()}"),
               (resource.RLIM_INFINITY if limit.soft == -1 else limit.soft,
                resource.RLIM_INFINITY if limit.hard == -1 else limit.hard))
              for limit in ulimits]
    before = options.preexec_fn

    def preexec() -> None:
        if before is not None:
            before()
        for which, values in wanted:
            resource.setrlimit(which, values)

    return dataclasses.replace(options, preexec_fn=preexec)


def _spawn(spec: ShimSpec, cwd: str) -> tuple[subprocess.Popen[bytes], dict[int, Stream],
                                               int | None, Confinement]:
    """Start the command: the process, the descriptors its output comes on, our end of its
    input (the pty master, which is also its output, or its stdin pipe), if any, and what
    holds its processes together."""
    confinement = HOST.confine(spec.container_id, spec.limits)
    options = with_ulimits(confinement.popen_options(), spec.ulimits)
    try:
        if spec.tty:
            from worker.engine.terminal import set_window_size  # Unix only, like ptys

            master, slave = os.openpty()
            try:
                if spec.console_size is not None:
                    set_window_size(master, *spec.console_size)
                child = subprocess.Popen(on_terminal(spec.argv), env=spec.env, cwd=cwd,
                                         stdin=slave, stdout=slave, stderr=slave,
                                         start_new_session=True,
                                         preexec_fn=options.preexec_fn)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)  # the master reads EIO once the container's holders are gone
        else:
            child = subprocess.Popen(
                spec.argv, env=spec.env, cwd=cwd,
                stdin=subprocess.PIPE if spec.stdin_open else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=options.start_new_session,
                creationflags=options.creationflags, preexec_fn=options.preexec_fn)
    except BaseException:
        confinement.close()
        raise
    try:  # on Windows the command waits, suspended, until it is in its job
        confinement.adopt(child.pid)
    except BaseException:
        child.kill()
        child.wait()
        confinement.close()
        raise
    if spec.tty:
        return child, {master: "stdout"}, master, confinement
    assert child.stdout is not None and child.stderr is not None
    streams: dict[int, Stream] = {child.stdout.fileno(): "stdout",
                                  child.stderr.fileno(): "stderr"}
    return (child, streams, child.stdin.fileno() if child.stdin is not None else None,
            confinement)


def run(spec: ShimSpec) -> int:
    argv = spec.argv
    state_dir = Path(spec.state_dir)
    log = JsonFileLog(Path(spec.log_path), max_size=spec.max_size, max_file=spec.max_file,
                      compress=spec.compress)
    cwd = spec.cwd or str(state_dir)
    started = time.time()
    try:
        child, streams, input_fd, confinement = _spawn(spec, cwd)
    except (OSError, subprocess.SubprocessError) as exc:
        # SubprocessError: entering the cgroup failed between fork and exec.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.write("stderr", f"shoal: cannot start {argv[0]}: {reason}\n".encode())
        log.close()
        write_atomic(state_dir / "exit.json", json.dumps(
            {"exit_code": 127, "started_at": started, "finished_at": time.time(),
             "error": f"cannot start {argv[0]}: {reason}"}).encode())
        _ready()
        return 127
    control = ControlServer() if input_fd is not None else None
    write_atomic(state_dir / "pid.json", json.dumps(
        {"pid": child.pid, "shim_pid": os.getpid(), "started_at": started,
         "control": control.path if control is not None else ""}).encode())
    _ready()
    try:
        if HOST.pollable_pipes:
            status = _serve(child, streams, input_fd, control, confinement, log, tty=spec.tty)
        else:
            status = serve_on_threads(child, confinement, log)
    finally:
        confinement.close()
        if control is not None:
            control.close()
    log.close()
    exit_code = status if status >= 0 else 128 - status
    write_atomic(state_dir / "exit.json", json.dumps(
        {"exit_code": exit_code, "started_at": started, "finished_at": time.time(),
         "signal": -status if status < 0 else 0}).encode())
    return 0


def serve_on_threads(child: subprocess.Popen[bytes], confinement: Confinement,
                     log: JsonFileLog) -> int:
    """Where pipes cannot be polled (Windows): copy stdout and stderr into the log on a
    thread each until the command has exited and its output has ended; its exit status.
    What the command left running is ended with it, so nothing holds the pipes open."""
    lock = threading.Lock()

    def copy(pipe: IO[bytes], stream: Stream) -> None:
        with pipe:
            while data := os.read(pipe.fileno(), 65536):
                with lock:
                    log.write(stream, data)

    assert child.stdout is not None and child.stderr is not None
    copiers = [threading.Thread(target=copy, args=(pipe, stream), daemon=True)
               for pipe, stream in ((child.stdout, "stdout"), (child.stderr, "stderr"))]
    for thread in copiers:
        thread.start()
    status = child.wait()
    confinement.end_rest()
    for thread in copiers:
        thread.join()
    return status


def _serve(child: subprocess.Popen[bytes], streams: dict[int, Stream], input_fd: int | None,
           control: ControlServer | None, confinement: Confinement, log: JsonFileLog, *,
           tty: bool) -> int:
    """Copy the output into the log and serve the control socket until the command has
    exited and its output has ended; its wait status."""
    # The worker signals the container, not the shim; a signal meant for us is passed on.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda n, _f: child.send_signal(n))
    # Wake the loop when the command exits: a container ends with its main process, so what
    # it left behind in its process group is killed (as a pid namespace would), even if it
    # still holds the output pipes.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _n, _f: None)
    selector = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    if control is not None:
        selector.register(control.listener, selectors.EVENT_READ)
    os.write(wake_w, b"\0")  # look once now: the command may have ended before the handler
    status: int | None = None
    while streams:
        for key, _ in selector.select():
            fd = key.fd if isinstance(key.fd, int) else key.fd.fileno()
            if fd == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 64)
                if status is None:
                    status = child.poll()
                    if status is not None:
                        confinement.end_rest()
                continue
            if control is not None and fd == control.listener.fileno():
                worker = control.accept(input_fd)
                if worker is not None:
                    selector.register(worker, selectors.EVENT_READ)
                continue
            if control is not None and fd in control.workers:
                command = control.command(fd)
                if command == b"":
                    selector.unregister(fd)
                elif command and CLOSE_STDIN in command and not tty \
                        and child.stdin is not None:
                    child.stdin.close()  # the container reads EOF
                    input_fd = None
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as exc:  # EIO: a pty whose every slave holder has gone
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if data:
                log.write(streams[fd], data)
                if tty:  # a prompt without a newline reaches the log at once
                    log.flush_partial()
            else:
                selector.unregister(fd)
                del streams[fd]
                if tty:
                    os.close(fd)
    return child.wait()


def main() -> int:
    return run(msgspec.json.decode(sys.argv[1], type=ShimSpec))


if __name__ == "__main__":
    sys.exit(main())
