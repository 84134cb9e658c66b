"""Pausing and resuming a container with the cgroup freezer.

On cgroup v1 the container's directory in the freezer hierarchy has ``freezer.state``
(THAWED, FREEZING, FROZEN); on cgroup v2 its one directory has ``cgroup.freeze`` (0 or 1),
and ``cgroup.events`` says when the freeze is complete (``frozen 1``). The freezer's directory
is found among the container's cgroup directories by the file it holds, so the state record
needs no field of its own.
"""

from __future__ import annotations

import errno
import os
import posixpath
import time

from worker.runtime.errors import OperationFailed
from worker.runtime.records import Record

FREEZE_TIMEOUT = 10.0


class Freezer(Record):
    """The container's freezer: a v1 ``freezer.state`` or a v2 ``cgroup.freeze`` file."""

    path: str
    unified: bool


def find(cgroup_dirs: list[str]) -> Freezer | None:
    """The freezer among the container's cgroup directories, if one is mounted."""
    # A v1 freezer hierarchy is mounted under its controller's name: look there first.
    for d in sorted(cgroup_dirs, key=lambda d: "freezer" not in d):
        v1 = posixpath.join(d, "freezer.state")
        if os.path.exists(v1):
            return Freezer(v1, unified=False)
        v2 = posixpath.join(d, "cgroup.freeze")
        if os.path.exists(v2):
            return Freezer(v2, unified=True)
    return None


def is_frozen(freezer: Freezer) -> bool:
    """Whether the container's processes are frozen (or being frozen: they run no more)."""
    try:
        with open(freezer.path) as f:
            value = f.read().strip()
    except FileNotFoundError:
        return False
    return value in ("FROZEN", "FREEZING") if not freezer.unified else value == "1"


def freeze(freezer: Freezer, timeout: float = FREEZE_TIMEOUT) -> None:
    """Freeze every process of the container; returns once none of them runs."""
    if freezer.unified:
        _write(freezer.path, "1")
        _await_v2_events(freezer, "frozen 1", timeout)
        return
    deadline = time.monotonic() + timeout
    while True:
        # A v1 freeze can stay FREEZING while a task sits in an uninterruptible sleep (or a
        # task forks as it is frozen); writing FROZEN again retries the tasks that remain.
        _write(freezer.path, "FROZEN")
        if _read(freezer.path) == "FROZEN":
            return
        if time.monotonic() > deadline:
            _write(freezer.path, "THAWED")
            raise OperationFailed(f"the freezer at {freezer.path} did not freeze within "
                                  f"{timeout}s; thawed again")
        # The v1 freezer announces nothing: its state file is the only way to know.
        time.sleep(0.001)


def thaw(freezer: Freezer, timeout: float = FREEZE_TIMEOUT) -> None:
    """Let the container's processes run again."""
    if freezer.unified:
        _write(freezer.path, "0")
        _await_v2_events(freezer, "frozen 0", timeout)
        return
    _write(freezer.path, "THAWED")  # thawing is synchronous on v1


def _await_v2_events(freezer: Freezer, wanted: str, timeout: float) -> None:
    """cgroup.events signals a change with POLLPRI: wait for the line ``wanted`` in it."""
    events = posixpath.join(posixpath.dirname(freezer.path), "cgroup.events")
    fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    try:
        import select  # here: only pause and resume get here

        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        deadline = time.monotonic() + timeout
        while wanted not in os.pread(fd, 4096, 0).decode().splitlines():
            left = deadline - time.monotonic()
            if left <= 0:
                raise OperationFailed(f"{events} did not say {wanted!r} within {timeout}s")
            poller.poll(left * 1000)
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OperationFailed(f"the freezer {path} is gone") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise OperationFailed(f"the freezer {path} is busy") from exc
        raise
    finally:
        os.close(fd)
