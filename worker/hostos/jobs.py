"""A container's processes on Windows as one job object: limits, listing and a tree kill.

The shim makes the job (named after the container, so a later worker opens it by name), sets
its limits and puts the command in it before it runs a single instruction: the command is
created suspended, assigned, then resumed, so nothing it starts escapes. The job is made with
KILL_ON_JOB_CLOSE: when the shim (which holds it) goes, so does everything in it, as a
container ends with its init. The logic here is pure over ``Win32Api``, so a test drives it
with a fake of that interface where Windows does not exist.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from worker.hostos import win32
from worker.hostos.win32 import Win32Api

KILLED_EXIT_CODE = 137  # what a Linux container killed with SIGKILL exits with: 128 + 9


@dataclass(frozen=True, slots=True)
class JobLimits:
    """What a container's processes are held to, together: memory in bytes (0: none; on
    Windows committed memory), a hard CPU cap in millicpus (0: none), the most processes alive
    at once (0: any); and what only a Linux cgroup holds (a Windows job refuses them):
    memory plus swap in bytes (-1: unlimited), relative CPU shares."""

    memory: int = 0
    millicpus: int = 0
    processes: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0


def job_name(container_id: str) -> str:
    """The job's name in the session's namespace, one per container."""
    return f"Local\\shoal-{container_id}"


def cpu_rate(millicpus: int, host_cpus: int) -> int:
    """A hard cap of ``millicpus`` as Windows counts it: 1/100 of a percent of all the
    host's processors together (1..10000)."""
    rate = millicpus * 10 // max(host_cpus, 1)
    return min(max(rate, 1), 10000)


def extended_limits(limits: JobLimits) -> win32.JOBOBJECT_EXTENDED_LIMIT_INFORMATION:
    info = win32.JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
    flags = (win32.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
             | win32.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION)
    if limits.memory:
        flags |= win32.JOB_OBJECT_LIMIT_JOB_MEMORY
        info.JobMemoryLimit = limits.memory
    if limits.processes:
        flags |= win32.JOB_OBJECT_LIMIT_ACTIVE_PROCESS
        info.BasicLimitInformation.ActiveProcessLimit = limits.processes
    info.BasicLimitInformation.LimitFlags = flags
    return info


def cpu_limits(millicpus: int, host_cpus: int) -> win32.JOBOBJECT_CPU_RATE_CONTROL_INFORMATION:
    info = win32.JOBOBJECT_CPU_RATE_CONTROL_INFORMATION()
    info.ControlFlags = (win32.JOB_OBJECT_CPU_RATE_CONTROL_ENABLE
                         | win32.JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP)
    info.CpuRate = cpu_rate(millicpus, host_cpus)
    return info


class Job:
    """A job the shim made and holds; closing it (or the shim's death) ends what is in it."""

    def __init__(self, api: Win32Api, handle: int) -> None:
        self.api = api
        self.handle = handle

    @classmethod
    def create(cls, api: Win32Api, name: str, limits: JobLimits, host_cpus: int) -> Job:
        handle = api.create_job_object(name)
        try:
            api.set_information_job_object(handle, win32.JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
                                           extended_limits(limits))
            if limits.millicpus:
                api.set_information_job_object(
                    handle, win32.JOB_OBJECT_CPU_RATE_CONTROL_INFORMATION,
                    cpu_limits(limits.millicpus, host_cpus))
        except BaseException:
            api.close_handle(handle)
            raise
        return cls(api, handle)

    def adopt_suspended(self, pid: int) -> None:
        """Put process ``pid``, created suspended, in the job, then let it run. A process
        that cannot be put in the job is ended rather than run unconfined."""
        process = self.api.open_process(
            win32.PROCESS_SET_QUOTA | win32.PROCESS_TERMINATE | win32.PROCESS_SUSPEND_RESUME,
            pid)
        try:
            try:
                self.api.assign_process_to_job_object(self.handle, process)
            except OSError:
                with contextlib.suppress(OSError):
                    self.api.terminate_process(process, KILLED_EXIT_CODE)
                raise
            self.api.resume_process(process)
        finally:
            self.api.close_handle(process)

    def terminate(self) -> None:
        """End every process in the job (the tree kill), as SIGKILL would: exit code 137."""
        self.api.terminate_job_object(self.handle, KILLED_EXIT_CODE)

    def close(self) -> None:
        """Let go of the job (again: nothing)."""
        if self.handle:
            handle, self.handle = self.handle, 0
            self.api.close_handle(handle)


def terminate_named(api: Win32Api, name: str) -> bool:
    """Kill every process of the job called ``name``; False if there is no such job."""
    try:
        handle = api.open_job_object(win32.JOB_OBJECT_TERMINATE, name)
    except OSError:
        return False
    try:
        api.terminate_job_object(handle, KILLED_EXIT_CODE)
    finally:
        api.close_handle(handle)
    return True


def members_of(api: Win32Api, name: str) -> list[int]:
    """The pids in the job called ``name`` (none if it is gone)."""
    try:
        handle = api.open_job_object(win32.JOB_OBJECT_QUERY, name)
    except OSError:
        return []
    try:
        return sorted(api.query_job_process_ids(handle))
    finally:
        api.close_handle(handle)


def adopt_into_named(api: Win32Api, name: str, pid: int) -> None:
    """Put suspended process ``pid`` in the running container's job ``name`` and let it run
    (an exec); OSError, with the process ended, if the job is gone."""
    try:
        handle = api.open_job_object(win32.JOB_OBJECT_ASSIGN_PROCESS, name)
    except OSError:
        with contextlib.suppress(OSError):
            process = api.open_process(win32.PROCESS_TERMINATE, pid)
            try:
                api.terminate_process(process, KILLED_EXIT_CODE)
            finally:
                api.close_handle(process)
        raise
    job = Job(api, handle)
    try:
        job.adopt_suspended(pid)
    finally:
        job.close()
