"""The process driver's per-container shim: runs one command, keeps its logs and its exit code.

``python -m worker.engine.shim SPEC_JSON`` starts the command in its own session, copies its
stdout and stderr into the container's json-file log, and when it ends writes ``exit.json``
atomically. The shim outlives the worker that started it, so a worker killed with SIGKILL loses
neither the container, nor its output, nor its exit code (live restore). Portable: no Linux-only
calls, for hosts without namespaces.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from worker.engine.logfile import JsonFileLog, Stream


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def run(spec: dict[str, object]) -> int:
    argv = [str(a) for a in spec["argv"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in spec["env"].items()}  # type: ignore[attr-defined]
    state_dir = Path(str(spec["state_dir"]))
    log = JsonFileLog(Path(str(spec["log_path"])), max_size=int(spec.get("max_size", 0)),  # type: ignore[call-overload]
                      max_file=int(spec.get("max_file", 1)))  # type: ignore[call-overload]
    cwd = str(spec.get("cwd") or state_dir)
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
        return 127
    write_atomic(state_dir / "pid.json", json.dumps(
        {"pid": child.pid, "shim_pid": os.getpid(), "started_at": started}).encode())
    # The worker signals the container, not the shim; a signal meant for us is passed on.
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda n, _f: child.send_signal(n))
    selector = selectors.DefaultSelector()
    assert child.stdout is not None and child.stderr is not None
    streams: dict[int, Stream] = {child.stdout.fileno(): "stdout", child.stderr.fileno(): "stderr"}
    for fd in streams:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    while streams:
        for key, _ in selector.select():
            fd = int(key.fd)  # type: ignore[call-overload]
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
    return run(json.loads(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
