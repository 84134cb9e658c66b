"""Keeps one etcd process tied to the life of the shoal process that wants it.

Run by ``embedded.EmbeddedEtcd`` as ``python _etcd_supervisor.py ETCD ARGS...`` with a pipe on
stdin. It starts etcd, prints ``pid N``, then waits for stdin to close: the parent closes it to
stop etcd, and the kernel closes it when the parent dies in any way, SIGKILL included. Either
way etcd gets SIGTERM, then SIGKILL after a grace period. Should this process itself be killed,
etcd gets SIGKILL from the kernel (PR_SET_PDEATHSIG). Stdlib only: runs by path, no imports
from shoal, and single-threaded so the pre-exec hook is safe.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
GRACE = 10.0


def _die_with_parent(sig: int, parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    me = os.getpid()
    _die_with_parent(signal.SIGTERM, os.getppid())
    stop_r, stop_w = os.pipe()
    # SIGTERM to us (e.g. our parent died, via the pdeathsig above) means stop too.
    signal.signal(signal.SIGTERM, lambda *_: os.write(stop_w, b"x"))
    etcd = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: _die_with_parent(signal.SIGKILL, me))
    print(f"pid {etcd.pid}", flush=True)
    pidfd = os.pidfd_open(etcd.pid)
    while True:
        try:
            ready, _, _ = select.select([sys.stdin, stop_r, pidfd], [], [])
        except InterruptedError:
            continue
        if pidfd in ready:
            return etcd.wait()
        if sys.stdin in ready and os.read(sys.stdin.fileno(), 4096):
            continue  # the parent never writes; ignore stray bytes
        break
    etcd.terminate()
    try:
        etcd.wait(GRACE)
    except subprocess.TimeoutExpired:
        etcd.kill()
        etcd.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
