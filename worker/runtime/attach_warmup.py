"""Lets the kernel's wait before a first cgroup move pass while a runtime command is still
importing, instead of when it moves the container's init into its cgroups.

Every write to a ``cgroup.procs`` file takes the kernel's one threadgroup lock for all
hierarchies (``cgroup_threadgroup_rwsem``) for writing. When no process has written one for a
while, the first writer waits for an RCU grace period (10-25 ms on these hosts) as the lock
switches fork, exec and exit to its slow path; a writer that comes within a grace period of
the last one does not wait. A runtime command moves the init ~15 ms after it starts (its
imports, the plan), and runc waits the same way (runc and shoal-runtime both take ~36 ms a
`run` when each comes 0.3 s after the last, ~18 and ~25 back to back). So ``start`` moves
this process into the cgroup it is already in (the kernel migrates nothing and calls no
controller) on a thread, as the command starts, and the wait passes while the main thread
imports; the init's move, later, finds the lock ready. When the wait outlasts the imports,
the launcher's first cgroup ``mkdir`` waits for the rest of it (the kernel holds the cgroup
mutex through it): the same wait, less what has passed. A kernel that keeps the lock ready
(cgroup2's ``favordynmods``) waits for nothing either way.

The thread touches only ``os`` functions that hold no Python lock while they wait in the
kernel, so the launcher may fork while it waits there (the fork copies only the forking
thread, and Python's own locks are taken around a fork); and the launcher's one unshare in
this process, of the pid namespace, is allowed with other threads (the kernel refuses only
user, mount and fs unshares to a process that shares its fs or has threads).
"""

from __future__ import annotations

import _thread
import os

_started = False


def start() -> None:
    """Start the no-op move on a thread (once per process); it ends when the move is done."""
    global _started
    if not _started:
        _started = True
        _thread.start_new_thread(move_in_place, ())


def own_procs_file(cgroup_listing: str, mounts: str = "/sys/fs/cgroup") -> str | None:
    """The ``cgroup.procs`` file of this process's own cgroup in one mounted hierarchy, from
    ``/proc/self/cgroup``'s text: the cgroup2 hierarchy where it is mounted (beside v1 at
    ``mounts``/unified, or alone at ``mounts``), else the first v1 hierarchy."""
    candidates: list[str] = []
    for line in cgroup_listing.splitlines():
        _, controllers, path = line.split(":", 2)
        path = path.rstrip("/")
        if controllers == "":
            candidates[:0] = [f"{mounts}/unified{path}/cgroup.procs",
                              f"{mounts}{path}/cgroup.procs"]
        else:
            candidates.append(f"{mounts}/{controllers.removeprefix('name=')}{path}"
                              "/cgroup.procs")
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return None


def move_in_place() -> str | None:
    """Move this process into the cgroup it is in: the ``cgroup.procs`` file written, or None
    if there was none to write or the kernel refused (only a head start is lost)."""
    try:
        fd = os.open("/proc/self/cgroup", os.O_RDONLY | os.O_CLOEXEC)
        try:
            listing = os.read(fd, 65536).decode("ascii", "replace")
        finally:
            os.close(fd)
        target = own_procs_file(listing)
        if target is None:
            return None
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")  # pid 0: the writer's own process
        finally:
            os.close(fd)
    except (OSError, ValueError):
        return None
    return target
