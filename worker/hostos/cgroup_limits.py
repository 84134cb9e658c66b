"""A ``process``-driver container's limits on Linux: a cgroup of its own, as the native runtime
gives its containers (``shoal/<id>`` beside the worker's own cgroup, written by the same
``worker.runtime.cgroups`` translation), in the hierarchies of the controllers the limits
need and no others (a plain process keeps its devices, for one).

The shim makes the cgroup before it starts the command, and the command joins it between fork
and exec, so nothing it runs or starts is ever outside it; when the command has exited the
shim kills what is left in the cgroup and removes it. ``refusal`` says, in the worker, before
anything starts, why a host cannot hold a container to its limits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker.hostos.jobs import JobLimits

if TYPE_CHECKING:
    from worker.runtime.spec import Resources

CPU_PERIOD = 100_000  # µs: Docker's (and the native driver's) CFS period
_KILL_ROUNDS = 100  # a fork racing the kill is caught within a few rounds
LINUX = sys.platform.startswith("linux")


def asked(limits: JobLimits) -> bool:
    return any((limits.memory, limits.memory_swap, limits.millicpus, limits.cpu_shares,
                limits.processes))


def controllers(limits: JobLimits) -> frozenset[str]:
    """The cgroup controllers that hold a container to ``limits``."""
    wanted = set()
    if limits.memory or limits.memory_swap:
        wanted.add("memory")
    if limits.millicpus or limits.cpu_shares:
        wanted.add("cpu")
    if limits.processes:
        wanted.add("pids")
    return frozenset(wanted)


def resources(limits: JobLimits) -> Resources:
    """``limits`` as the runtime-spec's ``linux.resources`` (what the native driver writes)."""
    from worker.runtime.spec import CPU, Memory, Pids, Resources

    memory = Memory(limit=limits.memory or None, swap=limits.memory_swap or None) \
        if limits.memory or limits.memory_swap else None
    cpu = CPU(shares=limits.cpu_shares or None,
              quota=limits.millicpus * CPU_PERIOD // 1000 if limits.millicpus else None,
              period=CPU_PERIOD if limits.millicpus else None) \
        if limits.millicpus or limits.cpu_shares else None
    return Resources(memory=memory, cpu=cpu,
                     pids=Pids(limit=limits.processes) if limits.processes else None)


def refusal(limits: JobLimits) -> str:
    """Why this host cannot hold a container to ``limits`` ("" if it can), naming the option."""
    if not asked(limits):
        return ""
    options = _options(limits)
    if not LINUX:
        return f"{options}: limits need Linux cgroups (or a Windows job)"
    try:
        dirs = _hierarchy_dirs(limits)
    except OSError as exc:
        return f"{options}: no cgroup for it here ({exc.strerror or exc})"
    for controller, directory in dirs.items():
        if directory is None:
            return f"{options}: no {controller} cgroup controller is mounted on this host"
        if not os.access(directory, os.W_OK):
            return f"{options}: the worker may not make {controller} cgroups ({directory})"
    if limits.memory_swap and limits.memory_swap > 0:
        memory = dirs.get("memory")
        swap_file = "memory.memsw.limit_in_bytes" if not _unified() else "memory.swap.max"
        if memory is not None and not os.path.exists(posixpath.join(memory, swap_file)):
            return "--memory-swap: this host's kernel does not account swap"
    return ""


def _options(limits: JobLimits) -> str:
    names = [name for name, value in (("--memory", limits.memory),
                                      ("--memory-swap", limits.memory_swap),
                                      ("--cpus", limits.millicpus),
                                      ("--cpu-shares", limits.cpu_shares),
                                      ("--pids-limit", limits.processes)) if value]
    return ", ".join(names)


def _unified() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _hierarchy_dirs(limits: JobLimits) -> dict[str, str | None]:
    """For each controller the limits need, the worker's own cgroup in its hierarchy."""
    from worker.runtime import cgroups

    found: dict[str, str | None] = dict.fromkeys(sorted(controllers(limits)))
    for hierarchy in cgroups.discover():
        for controller in found:
            if (hierarchy.unified and _unified()) or controller in hierarchy.controllers:
                found[controller] = found[controller] or hierarchy.own_dir
    return found


@dataclass(frozen=True, slots=True)
class ContainerCgroup:
    """The cgroup directories a container's processes are in (one per hierarchy)."""

    dirs: tuple[str, ...]

    @classmethod
    def make(cls, container_id: str, limits: JobLimits) -> ContainerCgroup:
        """Create (or join, if a shim before us left it) the cgroup and write the limits."""
        from worker.runtime import cgroups

        wanted = controllers(limits)
        chosen = [h for h in cgroups.discover()
                  if (h.unified and _unified()) or h.controllers & wanted]
        places = cgroups.container_dirs(chosen, None, container_id)
        # A host process: no device policy but what its limits name (none).
        cgroups.create(places, resources(limits), confine_devices=False)
        return cls(tuple(directory for _, directory in places))

    def joiner(self) -> Callable[[], None]:
        """What the command runs between fork and exec to enter the cgroup ("0": itself)."""
        procs = [posixpath.join(directory, "cgroup.procs") for directory in self.dirs]

        def join() -> None:
            for path in procs:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)

        return join

    def pids(self) -> list[int]:
        from worker.runtime import cgroups

        return cgroups.pids_in(list(self.dirs))

    def kill_all(self) -> None:
        """SIGKILL everything in the cgroup, again while a fork races the kill."""
        for _ in range(_KILL_ROUNDS):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        from worker.runtime import cgroups

        try:
            cgroups.remove(list(self.dirs))
        except OSError as exc:  # a cgroup still busy is left, as a stopped runc's would be
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
