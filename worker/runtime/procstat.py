"""A process's start time from /proc: with the pid, what tells a process from a later one that
reuses its pid; and waiting for a process to end."""

from __future__ import annotations

import os


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in ticks); None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def wait_gone(pid: int, start: int | None, timeout: float) -> bool:
    """Wait (on a pidfd, no polling loop) until the process has exited; True if it has."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if start is not None and proc_start_time(pid) not in (start, None):
            return True  # the pid now belongs to someone else
        import select
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)
