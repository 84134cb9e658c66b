"""A process's start time from /proc: with the pid, what tells a process from a later one that
reuses its pid."""

from __future__ import annotations


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
