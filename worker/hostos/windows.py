"""The Windows side of the host seam: job objects, process groups, console control events.

A container's command is created suspended in a new process group, put in a job object of
its own (memory, CPU and process-count limits; KILL_ON_JOB_CLOSE) and resumed; exec'd
processes join the same job. Stop asks with CTRL_BREAK_EVENT (what Windows has instead of
SIGTERM: console programs get it, services and GUI programs do not), and the kill that follows
the grace period is TerminateJobObject: the whole tree, exit code 137. Other signals have no
Windows meaning and are refused.

The event loop is asyncio's selector loop, not the Proactor loop that is Windows' default:
the channels wait on ZeroMQ's socket with ``loop.add_reader``, which only the selector loop
implements on Windows; child processes, which the selector loop cannot watch there, are
waited for on threads (``PopenChild``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from protocol import signals
from protocol.errors import Unsupported
from worker.hostos import jobs, win32
from worker.hostos.base import Child, Confinement, HostOS, PopenChild, PopenOptions
from worker.hostos.jobs import Job, JobLimits
from worker.hostos.win32 import Win32Api

log = structlog.get_logger("shoal.hostos")

ERROR_ACCESS_DENIED = 5
_FOREIGN_WAIT_MS = 250  # a waiting thread looks up from WaitForSingleObject this often
_BASE_VARIABLES = ("PATH", "PATHEXT", "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "TEMP",
                   "TMP", "PROGRAMDATA", "PROGRAMFILES", "USERPROFILE", "APPDATA",
                   "LOCALAPPDATA", "NUMBER_OF_PROCESSORS", "PROCESSOR_ARCHITECTURE")


class JobConfinement(Confinement):
    def __init__(self, job: Job) -> None:
        self.job = job

    def popen_options(self) -> PopenOptions:
        return PopenOptions(creationflags=win32.CREATE_NEW_PROCESS_GROUP
                            | win32.CREATE_SUSPENDED)

    def adopt(self, pid: int) -> None:
        try:
            self.job.adopt_suspended(pid)
        except BaseException:
            self.job.close()  # KILL_ON_JOB_CLOSE: nothing runs unconfined
            raise

    def end_rest(self) -> None:
        self.job.terminate()

    def close(self) -> None:
        self.job.close()


class WindowsHost(HostOS):
    name = "windows"
    pollable_pipes = False
    terminals = False
    rlimits = False

    def __init__(self, api: Win32Api | None = None) -> None:
        self._api = api

    @property
    def api(self) -> Win32Api:
        if self._api is None:
            self._api = win32.Kernel32()
        return self._api

    def run(self, main: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(main)

    def on_stop_request(self, callback: Callable[[], None]) -> Callable[[], None]:
        # The selector loop has no add_signal_handler on Windows: a plain handler hands the
        # request to the loop (Ctrl+C, Ctrl+Break; what a service manager sends as well).
        loop = asyncio.get_running_loop()
        numbers = [n for n in (getattr(signal, name, None) for name in ("SIGINT", "SIGBREAK"))
                   if n is not None]
        before = {n: signal.getsignal(n) for n in numbers}
        for number in numbers:
            signal.signal(number, lambda _n, _f: loop.call_soon_threadsafe(callback))

        def undo() -> None:
            for number, handler in before.items():
                signal.signal(number, handler)

        return undo

    def memory_total(self) -> int:
        try:
            return self.api.total_physical_memory()
        except OSError:
            return 0

    def process_limit(self) -> int:
        return 0  # Windows has no fixed bound on processes

    def base_environment(self) -> dict[str, str]:
        # Without SYSTEMROOT many programs (Python among them) cannot even initialise.
        return {name: os.environ[name] for name in _BASE_VARIABLES if name in os.environ}

    def refuse_limits(self, limits: JobLimits) -> str:
        if limits.cpu_shares:
            return ("--cpu-shares: a Windows job takes either relative weights or a hard cap; "
                    "the process driver uses the hard cap (--cpus)")
        if limits.memory_swap:
            return ("--memory-swap: a Windows job limits committed memory, which includes the "
                    "page file, so --memory is the only memory limit")
        return ""

    async def start_shim(self, argv: list[str], env: dict[str, str]) -> Child:
        def start(flags: int) -> subprocess.Popen[bytes]:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, env=env, creationflags=flags)

        # Out of the worker's own job, if it runs in one (a service manager's, a CI
        # runner's), so that a worker killed with its job leaves its containers running;
        # a job that forbids breaking away keeps the shim in it.
        try:
            popen = await asyncio.to_thread(start, win32.CREATE_NEW_PROCESS_GROUP
                                            | win32.CREATE_BREAKAWAY_FROM_JOB)
        except PermissionError:
            popen = await asyncio.to_thread(start, win32.CREATE_NEW_PROCESS_GROUP)
        return PopenChild(popen)

    async def start_exec(self, argv: list[str], *, env: dict[str, str], cwd: str | None,
                         stdio: tuple[int | None, int, int], container_id: str) -> Child:
        popen = await asyncio.to_thread(
            subprocess.Popen, argv, env=env, cwd=cwd,
            stdin=stdio[0] if stdio[0] is not None else subprocess.DEVNULL,
            stdout=stdio[1], stderr=stdio[2],
            creationflags=win32.CREATE_NEW_PROCESS_GROUP | win32.CREATE_SUSPENDED)
        try:
            jobs.adopt_into_named(self.api, jobs.job_name(container_id), popen.pid)
        except OSError:
            popen.wait()
            raise
        return PopenChild(popen)

    def signal(self, pid: int, signum: int, *, container_id: str, all_processes: bool) -> None:
        if signum == signals.SIGKILL:
            if all_processes:
                jobs.terminate_named(self.api, jobs.job_name(container_id))
            else:
                self._terminate(pid)
        elif signum in (signals.SIGTERM, signals.SIGINT):
            # CTRL_C cannot be sent to a process group; CTRL_BREAK reaches every console
            # process of the container's group (the main process leads it).
            try:
                self.api.generate_console_ctrl_event(win32.CTRL_BREAK_EVENT, pid)
            except OSError as exc:
                # No console shared with it (a worker run as a service has none): it cannot
                # be asked, and a stop kills it when the grace period ends.
                if self.alive(pid):
                    log.warning("cannot ask the container to stop", pid=pid,
                                container_id=container_id, error=str(exc))
        else:
            raise Unsupported(f"signal {signum} has no equivalent on Windows: the process "
                              "driver there sends SIGTERM/SIGINT as CTRL_BREAK and SIGKILL as "
                              "a job kill", details={"signal": str(signum)})

    def _terminate(self, pid: int) -> None:
        try:
            process = self.api.open_process(win32.PROCESS_TERMINATE, pid)
        except OSError:
            return  # gone already
        try:
            self.api.terminate_process(process, jobs.KILLED_EXIT_CODE)
        finally:
            self.api.close_handle(process)

    def alive(self, pid: int) -> bool:
        if pid <= 0:
            return False
        try:
            process = self.api.open_process(win32.PROCESS_QUERY_LIMITED_INFORMATION, pid)
        except OSError as exc:
            return getattr(exc, "winerror", None) == ERROR_ACCESS_DENIED
        try:
            return self.api.get_exit_code_process(process) == win32.STILL_ACTIVE
        finally:
            self.api.close_handle(process)

    async def wait_foreign(self, pid: int) -> None:
        try:
            process = self.api.open_process(win32.SYNCHRONIZE, pid)
        except OSError:
            return
        abandoned = threading.Event()

        def wait() -> None:
            while not abandoned.is_set():
                if self.api.wait_for_single_object(process, _FOREIGN_WAIT_MS) != win32.WAIT_TIMEOUT:
                    return  # WAIT_OBJECT_0, or WAIT_FAILED: either way nothing to wait for

        try:
            await asyncio.to_thread(wait)
        finally:
            abandoned.set()
            self.api.close_handle(process)

    def members(self, pid: int, container_id: str) -> list[int]:
        return jobs.members_of(self.api, jobs.job_name(container_id))

    def confine(self, container_id: str, limits: JobLimits) -> Confinement:
        return JobConfinement(Job.create(self.api, jobs.job_name(container_id), limits,
                                         os.cpu_count() or 1))
