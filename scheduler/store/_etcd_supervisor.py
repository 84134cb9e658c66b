"""Keeps one etcd process tied to the life of the shoal process that wants it, and running.

Run by ``embedded.EmbeddedEtcd`` as ``python _etcd_supervisor.py [--socket PATH]... -- ETCD
ARGS...`` with a pipe on stdin. It starts etcd, prints ``pid N``, then waits for stdin to close:
the parent closes it to stop etcd, and the kernel closes it when the parent dies in any way,
SIGKILL included. Either way etcd gets SIGTERM, then SIGKILL after a grace period. Should this
process itself be killed, etcd gets SIGKILL from the kernel (PR_SET_PDEATHSIG).

Once the parent writes ``r`` on stdin (it does when etcd first served: an etcd that cannot start
is reported, not retried), an etcd that dies is started again, after a pause that doubles from
``RESTART_MIN`` to ``RESTART_MAX`` and starts over once etcd has stayed up ``STABLE`` seconds.
The unix sockets an etcd killed with SIGKILL leaves behind (``--socket``) are removed first:
etcd would not listen over them. Stdlib only: runs by path, no imports from shoal, and
single-threaded so the pre-exec hook is safe.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
GRACE = 10.0
RESTART_MIN = 0.1
RESTART_MAX = 5.0
STABLE = 10.0
ARM = b"r"


def _die_with_parent(sig: int, parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _say(text: str) -> None:
    print(f"etcd supervisor: {text}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, command: list[str], sockets: list[str]) -> None:
        self.command = command
        self.sockets = sockets
        self.me = os.getpid()
        self.armed = False
        self.stop_r, stop_w = os.pipe()
        # SIGTERM to us (e.g. our parent died, via the pdeathsig) means stop too.
        signal.signal(signal.SIGTERM, lambda *_: os.write(stop_w, b"x"))

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                preexec_fn=lambda: _die_with_parent(signal.SIGKILL, self.me))

    def wait(self, pidfd: int | None, timeout: float | None) -> str:
        """``exited`` (etcd), ``stop``, or ``timeout``; notes the parent's arming byte."""
        fds: list[int] = [sys.stdin.fileno(), self.stop_r]
        if pidfd is not None:
            fds.append(pidfd)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            try:
                ready, _, _ = select.select(fds, [], [], left)
            except InterruptedError:
                continue
            if pidfd is not None and pidfd in ready:
                return "exited"
            if self.stop_r in ready:
                return "stop"
            if sys.stdin.fileno() in ready:
                data = os.read(sys.stdin.fileno(), 4096)
                if not data:
                    return "stop"
                self.armed = self.armed or ARM in data
                continue
            if not ready:
                return "timeout"

    def run(self) -> int:
        etcd = self.start()
        print(f"pid {etcd.pid}", flush=True)
        pause = RESTART_MIN
        while True:
            started = time.monotonic()
            pidfd = os.pidfd_open(etcd.pid)
            try:
                event = self.wait(pidfd, None)
            finally:
                os.close(pidfd)
            if event == "stop":
                return self.stop(etcd)
            status = etcd.wait()
            if not self.armed:
                return status
            if time.monotonic() - started >= STABLE:
                pause = RESTART_MIN
            _say(f"etcd (pid {etcd.pid}) exited with status {status}; "
                 f"restarting it in {pause:.1f} s")
            if self.wait(None, pause) == "stop":
                return 0
            pause = min(pause * 2, RESTART_MAX)
            for path in self.sockets:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            etcd = self.start()
            _say(f"etcd restarted: pid {etcd.pid}")

    @staticmethod
    def stop(etcd: subprocess.Popen[bytes]) -> int:
        etcd.terminate()
        try:
            etcd.wait(GRACE)
        except subprocess.TimeoutExpired:
            etcd.kill()
            etcd.wait()
        return 0


def main(argv: list[str]) -> int:
    _die_with_parent(signal.SIGTERM, os.getppid())
    parser = argparse.ArgumentParser(prog="_etcd_supervisor")
    parser.add_argument("--socket", action="append", default=[],
                        help="a unix socket etcd listens on, removed before a restart")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no etcd command given")
    return Supervisor(command, args.socket).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
