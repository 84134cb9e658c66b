"""The warm-up of the kernel's cgroup attach lock (worker.runtime.attach_warmup): which
``cgroup.procs`` file it writes for each cgroup layout, and that the move changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.runtime.attach_warmup import move_in_place, own_procs_file

HYBRID = "12:pids:/a\n3:cpu,cpuacct:/a\n1:name=systemd:/s\n0::/u\n"
V1 = "12:pids:/a\n3:cpu,cpuacct:/a\n1:name=systemd:/s\n"
V2 = "0::/user.slice/x\n"


def _procs(mounts: Path, *dirs: str) -> None:
    for d in dirs:
        (mounts / d).mkdir(parents=True, exist_ok=True)
        (mounts / d / "cgroup.procs").touch()


@pytest.mark.parametrize(("listing", "present", "chosen"), [
    # Beside v1, cgroup2 is mounted at unified: chosen first wherever its line stands.
    (HYBRID, ["pids/a", "unified/u"], "unified/u"),
    # cgroup2 alone, at the mount point itself.
    (V2, ["user.slice/x"], "user.slice/x"),
    # v1 only: the first hierarchy that is mounted where its controllers name it.
    (V1, ["cpu,cpuacct/a", "systemd/s"], "cpu,cpuacct/a"),
    (V1, ["systemd/s"], "systemd/s"),
    # A root cgroup's path is "/": no doubled slash.
    ("0::/\n", [""], ""),
    # Nothing mounted where the listing says: no file, no write.
    (HYBRID, [], None),
])
def test_which_procs_file_the_warm_up_writes(tmp_path: Path, listing: str, present: list[str],
                                             chosen: str | None) -> None:
    _procs(tmp_path, *present)
    expected = None if chosen is None else str(tmp_path / chosen / "cgroup.procs")
    if chosen == "":
        expected = f"{tmp_path}/cgroup.procs"
    assert own_procs_file(listing, str(tmp_path)) == expected


@pytest.mark.root
def test_the_move_in_place_moves_nothing() -> None:
    with open("/proc/self/cgroup") as f:
        before = f.read()
    written = move_in_place()
    assert written is not None and written.endswith("/cgroup.procs")
    with open("/proc/self/cgroup") as f:
        assert f.read() == before
    with open(written) as f:
        assert str(os.getpid()) in f.read().split()


@pytest.mark.root
def test_a_process_forks_and_creates_a_pid_namespace_beside_the_warm_up_thread() -> None:
    # What the launcher does while the thread may still wait in the kernel: fork (the child
    # runs Python), unshare the pid namespace and set it back. Run in a process of its own.
    code = """
import os, sys
from worker.runtime import attach_warmup, syscalls
attach_warmup.start()
own = os.open("/proc/self/ns/pid", os.O_RDONLY)
syscalls.unshare(0x20000000)
pid = os.fork()
if pid == 0:
    os._exit(0 if os.getpid() == 1 else 3)
syscalls.setns(own, 0x20000000)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, cwd=Path(__file__).resolve().parents[3])
    assert (done.returncode, done.stderr) == (0, "")
