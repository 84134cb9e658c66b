"""Driving the native runtime in tests: OCI bundles on a busybox rootfs, the runtime's CLI,
its helper from a threaded uvloop program (as the worker runs it), and checks that nothing
is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvloop

from worker.runtime.client import RuntimeHelper

REPO = Path(__file__).resolve().parents[2]

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def base_config(args: list[str]) -> dict[str, Any]:
    """A typical runtime-spec config: new namespaces, the usual mounts and masked paths."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/bin", "TERM=xterm"], "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in
                             ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "shoaltest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware",
                            "/proc/acpi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"],
        },
    }


class Bundle:
    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config

    def write(self) -> Path:
        (self.path / "config.json").write_text(json.dumps(self.config))
        return self.path


Wrap = Callable[[list[str]], list[str]]


def as_unified_host(cmd: list[str]) -> list[str]:
    """``cmd`` run where this host looks like a cgroup v2 (unified) host: in a mount namespace
    of its own, the cgroup mounts under /sys/fs/cgroup replaced by the cgroup2 tree (the same
    kernel hierarchy as the host's /sys/fs/cgroup/unified on a hybrid host; the v1 controllers
    go unseen, so their cgroups stay the caller's)."""
    script = ("umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup "
              '&& exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *cmd]


def as_this_host(cmd: list[str]) -> list[str]:
    """``cmd`` as it is: the host as it is."""
    return cmd


def run_both(bundle: Bundle, state_root: Path, runc_root: Path, wrap: Wrap = as_this_host
             ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``run`` of one bundle under runc, then under shoal's runtime: (runc's, ours); ``wrap``
    changes how each command is started (``as_unified_host``)."""
    cid = "t" + uuid.uuid4().hex[:10]
    theirs = subprocess.run(wrap(["runc", "--root", str(runc_root), "run", "-b",
                                  str(bundle.path), cid]),
                            capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, check=False)
    ours = subprocess.run(wrap(shoal_cmd(state_root, "run", "-b", str(bundle.path), cid)),
                          capture_output=True, text=True, timeout=60, env=env(),
                          stdin=subprocess.DEVNULL, check=False)
    return theirs, ours


def shoal_cmd(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "worker.runtime", "--root", str(root), *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


@contextlib.contextmanager
def no_leftovers(marker: str) -> Iterator[None]:
    """Assert that no mount mentioning ``marker`` is left in the host's mount table."""
    yield
    mounts = Path("/proc/self/mountinfo").read_text()
    assert marker not in mounts


def cli(root: Path, *args: str, check: bool = True,
        wrap: Wrap = as_this_host) -> subprocess.CompletedProcess[str]:
    # Files, never pipes: a created init inherits stdio and would hold a pipe open (as runc's).
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(wrap(shoal_cmd(root, *args)), env=env(), timeout=60,
                              stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=False)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out.read().decode(),
                                           err.read().decode())
    if check:
        assert done.returncode == 0, done.stderr
    return done


def cgroup_leftovers(cid: str) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mountpoint = fields[4]
        if "cgroup" in line.split(" - ")[1].split()[0]:
            for dirpath, dirnames, _ in os.walk(mountpoint):
                found.extend(os.path.join(dirpath, d) for d in dirnames if d == cid)
    return found


TIMEOUT = 20.0


@contextlib.contextmanager
def busy_threads(n: int = 3) -> Iterator[None]:
    """Other threads running, as grpc and executors do in the worker."""
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro_fn(), TIMEOUT)
    with busy_threads():
        uvloop.run(bounded())


def read_all(fd: int) -> bytes:
    """Everything until every writer is gone (EOF on a pipe, EIO on a pty master)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def kill_and_await(pid: int) -> None:
    """SIGKILL and wait until it has exited (a pidfd: whoever its parent is, it reaps it)."""
    fd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        assert select.select([fd], [], [], TIMEOUT)[0]
    finally:
        os.close(fd)


async def spawn(root: Path, pids: list[int]) -> RuntimeHelper:
    rt = await RuntimeHelper.spawn(root, log_level="warning")
    pids.append(rt.helper_pid)
    return rt
