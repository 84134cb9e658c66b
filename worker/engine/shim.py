"""The process driver's per-container shim: runs one command, keeps its logs and its exit code.

``python -m worker.engine.shim SPEC_JSON`` starts the command in its own session, copies its
stdout and stderr into the container's json-file log, and when it ends writes ``exit.json``
atomically. The shim outlives the worker that started it, so a worker killed with SIGKILL loses
neither the container, nor its output, nor its exit code (live restore). Portable: no Linux-only
calls, for hosts without namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from worker.engine.logfile import JsonFileLog, Stream


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ShimSpec(msgspec.Struct, frozen=True):
    """What the driver asks the shim to run; passed as JSON in argv."""

    argv: list[str]
    env: dict[str, str]
    state_dir: str
    log_path: str
    cwd: str = ""
    max_size: int = 0
    max_file: int = 1


def _ready() -> None:
    """Tell the driver (reading our stdout) that pid.json or exit.json is written, then let
    go of that pipe: a worker that dies later must not take us down with a SIGPIPE."""
    with contextlib.suppress(OSError):
        os.write(1, b"ready\n")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def run(spec: ShimSpec) -> int:
    argv = spec.argv
    env = spec.env
    state_dir = Path(spec.state_dir)
    log = JsonFileLog(Path(spec.log_path), max_size=spec.max_size, max_file=spec.max_file)
    cwd = spec.cwd or str(state_dir)
    started = time.time()
    try:
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
    except OSError as exc:
        log.write("stderr", f"shoal: cannot start {argv[0]}: {exc.strerror}\n".encode())
        log.close()
        write_atomic(state_dir / "exit.json", json.dumps(
            {"exit_code": 127, "started_at": started, "finished_at": time.time(),
             "error": f"cannot start {argv[0]}: {exc.strerror}"}).encode())
        _ready()
        return 127
    write_atomic(state_dir / "pid.json", json.dumps(
        {"pid": child.pid, "shim_pid": os.getpid(), "started_at": started}).encode())
    _ready()
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
    assert child.stdout is not None and child.stderr is not None
    streams: dict[int, Stream] = {child.stdout.fileno(): "stdout", child.stderr.fileno(): "stderr"}
    for fd in streams:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
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
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(child.pid, signal.SIGKILL)
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if data:
                log.write(streams[fd], data)
            else:
                selector.unregister(fd)
                del streams[fd]
    status = child.wait()
    log.close()
    exit_code = status if status >= 0 else 128 - status
    write_atomic(state_dir / "exit.json", json.dumps(
        {"exit_code": exit_code, "started_at": started, "finished_at": time.time(),
         "signal": -status if status < 0 else 0}).encode())
    return 0


def main() -> int:
    return run(msgspec.json.decode(sys.argv[1], type=ShimSpec))


if __name__ == "__main__":
    sys.exit(main())
