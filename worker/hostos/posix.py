"""The POSIX side of the host seam (Linux, and any Unix the process driver runs on):
sessions and process groups, signals, ``/proc``, pidfds and uvloop; on Linux, a cgroup per
container that asks for limits (``cgroup_limits``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from worker.hostos import cgroup_limits
from worker.hostos.base import Child, Confinement, HostOS, PopenOptions
from worker.hostos.cgroup_limits import ContainerCgroup
from worker.hostos.jobs import JobLimits

_POLL = 0.05  # where no pidfd exists, how often a foreign shim's exit is looked for


class AsyncioChild(Child):
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid

    async def wait(self) -> int:
        return await self.proc.wait()

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def read_line(self) -> bytes:
        return await self.proc.stdout.readline() if self.proc.stdout is not None else b""


class ProcessGroup(Confinement):
    """The command leads a process group of its own (its session): what it leaves behind
    when it exits is killed with the group, as a pid namespace would. With limits, it runs in
    a cgroup of its own too (``cgroup_limits``), which holds what left the group as well."""

    def __init__(self, cgroup: ContainerCgroup | None = None) -> None:
        self.pid = 0
        self.cgroup = cgroup

    def popen_options(self) -> PopenOptions:
        return PopenOptions(start_new_session=True,
                            preexec_fn=self.cgroup.joiner() if self.cgroup else None)

    def adopt(self, pid: int) -> None:
        self.pid = pid

    def end_rest(self) -> None:
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()


class PosixHost(HostOS):
    name = "posix"
    pollable_pipes = True
    terminals = True
    rlimits = True

    def run(self, main: Coroutine[Any, Any, None]) -> None:
        import uvloop

        uvloop.run(main)

    def on_stop_request(self, callback: Callable[[], None]) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        numbers = (signal.SIGTERM, signal.SIGINT)
        for number in numbers:
            loop.add_signal_handler(number, callback)

        def undo() -> None:
            for number in numbers:
                loop.remove_signal_handler(number)

        return undo

    def memory_total(self) -> int:
        with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
        return 0

    def process_limit(self) -> int:
        with contextlib.suppress(OSError, ValueError), \
                open("/proc/sys/kernel/pid_max") as pid_max:
            return int(pid_max.read())
        return 0

    def base_environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def refuse_limits(self, limits: JobLimits) -> str:
        return cgroup_limits.refusal(limits)

    async def start_shim(self, argv: list[str], env: dict[str, str]) -> Child:
        return AsyncioChild(await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True, env=env))

    async def start_exec(self, argv: list[str], *, env: dict[str, str], cwd: str | None,
                         stdio: tuple[int | None, int, int], container_id: str) -> Child:
        stdin = stdio[0] if stdio[0] is not None else asyncio.subprocess.DEVNULL
        return AsyncioChild(await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, stdin=stdin, stdout=stdio[1], stderr=stdio[2],
            start_new_session=True))

    def signal(self, pid: int, signum: int, *, container_id: str, all_processes: bool) -> None:
        with contextlib.suppress(ProcessLookupError):
            if all_processes:
                os.killpg(pid, signum)  # the shim made the command its own process group
            else:
                os.kill(pid, signum)

    def alive(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    async def wait_foreign(self, pid: int) -> None:
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                fd = pidfd_open(pid)
            except ProcessLookupError:
                return
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def exited() -> None:
                if not done.done():
                    done.set_result(None)

            loop.add_reader(fd, exited)
            try:
                await done
            finally:
                loop.remove_reader(fd)
                os.close(fd)
            return
        while self.alive(pid):  # noqa: ASYNC110 - no exit notification without a pidfd
            await asyncio.sleep(_POLL)

    def members(self, pid: int, container_id: str) -> list[int]:
        if pid <= 0 or not self.alive(pid):
            return []
        found = [pid]
        proc = Path("/proc")
        if proc.is_dir():
            for entry in proc.iterdir():
                if entry.name.isdigit() and int(entry.name) != pid:
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                        if int(fields[2]) == pid:  # process group
                            found.append(int(entry.name))
        return sorted(found)

    def confine(self, container_id: str, limits: JobLimits) -> Confinement:
        if not cgroup_limits.asked(limits):
            return ProcessGroup()
        return ProcessGroup(ContainerCgroup.make(container_id, limits))
