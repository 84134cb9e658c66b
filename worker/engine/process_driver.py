"""The ``process`` driver: containers as plain processes, no isolation, for hosts without
namespaces (Windows, macOS) and wherever it is forced. Each container runs under a small shim
(``worker.engine.shim``) that keeps its logs and exit code, and its terminal (``-t``) or open
stdin (``-i``), so a worker restart loses nothing: the worker takes a duplicate of the input
from the shim's control socket at start and at re-adoption. Everything that differs between
POSIX and Windows (sessions or job objects, signals, waiting for a process) goes through
``worker.hostos.HOST``. Resource limits are held, not just recorded: by a cgroup of the
container's own on Linux, a job object on Windows; a host that can hold none refuses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import msgspec
import structlog

from protocol.errors import Internal, Unsupported
from worker.engine.driver import (
    Driver,
    ExecPipes,
    ExecProcess,
    ExecRequest,
    ExitStatus,
    Started,
)
from worker.engine.records import EngineContainer
from worker.engine.shim import ShimSpec, on_terminal
from worker.engine.shim_control import ShimInput
from worker.hostos import HOST, Child, JobLimits

log = structlog.get_logger("shoal.process_driver")


class ProcessDriver(Driver):
    name = "process"
    mounts = False
    namespaces = False
    default_network = "host"  # a plain process has no namespace of its own to network

    def __init__(self, state_root: Path) -> None:
        self.state_root = state_root
        self._shims: dict[str, Child] = {}
        # Our duplicate of a running container's input, which its shim holds (-i or -t).
        self._inputs: dict[str, ShimInput] = {}

    def _dir(self, record: EngineContainer) -> Path:
        return self.state_root / record.id / "process"

    async def prepare(self, record: EngineContainer) -> dict[str, str]:
        if record.spec.seccomp not in ("", "unconfined"):
            # Plain processes get no default profile either; a profile asked for by name is
            # refused rather than silently not applied.
            raise Unsupported("the process driver does not isolate containers: a seccomp "
                              "profile needs the native driver")
        spec = record.spec
        if (spec.cap_add or spec.cap_drop or spec.privileged or spec.no_new_privileges
                or spec.devices):
            # A plain process has the worker's own privileges and the host's devices:
            # neither more nor fewer.
            raise Unsupported("the process driver does not isolate containers: --cap-add, "
                              "--cap-drop, --privileged, --device and --security-opt "
                              "no-new-privileges need the native driver")
        if record.spec.network not in ("none", "host") or record.spec.connected:
            # A plain process shares the host's network: an address of its own, a bridge or a
            # published port would be promised and not given.
            wanted = [*([record.spec.network] if record.spec.network not in ("none", "host")
                        else []), *(a.name for a in record.spec.connected)]
            raise Unsupported(f"the process driver runs containers on the host's network only: "
                              f"--network {', '.join(wanted)} needs the native driver")
        if record.spec.ulimits and not HOST.rlimits:
            raise Unsupported("the process driver cannot set --ulimit on this host: it has "
                              "no resource limits per process (a job limits the whole "
                              "container: --memory, --cpus, --pids-limit)")
        if (record.spec.tty or record.spec.stdin_open) and not HOST.terminals:
            raise Unsupported("the process driver cannot give a container a terminal or an "
                              "open stdin (run -i/-t) on this host; exec -i works")
        refusal = HOST.refuse_limits(_limits(record))
        if refusal:
            raise Unsupported(f"the process driver on this host cannot honour {refusal}")
        directory = self._dir(record)
        directory.mkdir(parents=True, exist_ok=True)
        return {"state_dir": str(directory)}

    async def start(self, record: EngineContainer, log_path: str, *, max_size: int = 0,
                    max_file: int = 1, compress: bool = False,
                    console_size: tuple[int, int] | None = None,
                    network_peer: EngineContainer | None = None) -> Started:
        if network_peer is not None:  # create refuses it first (``namespaces``)
            raise Unsupported("the process driver has no network namespace to join")
        directory = self._dir(record)
        directory.mkdir(parents=True, exist_ok=True)
        await self.cleanup(record)
        self._close_input(record)
        env = {**HOST.base_environment(),
               **dict(item.split("=", 1) for item in record.env() if "=" in item)}
        env.setdefault("HOSTNAME", record.spec.hostname or record.id[:12])
        workdir = record.workdir()
        spec = ShimSpec(argv=record.argv(), env=env, state_dir=str(directory), log_path=log_path,
                        cwd=workdir if workdir != "/" and os.path.isdir(workdir) else "",
                        max_size=max_size, max_file=max_file, compress=compress,
                        tty=record.spec.tty,
                        stdin_open=record.spec.stdin_open,
                        console_size=console_size if record.spec.tty else None,
                        container_id=record.id, limits=_limits(record),
                        ulimits=list(record.spec.ulimits))
        if not spec.argv:
            raise Internal("no command to run: the spec and the image name none")
        shim = await HOST.start_shim(
            [sys.executable, "-m", "worker.engine.shim", msgspec.json.encode(spec).decode()],
            {**os.environ, "PYTHONPATH": _package_root()})
        self._shims[record.id] = shim
        started = await self._started(record, shim)
        await asyncio.to_thread(self._take_input, record)
        return started

    async def _started(self, record: EngineContainer, shim: Child) -> Started:
        """The shim says "ready" once pid.json (or, if the command failed, exit.json) exists."""
        await shim.read_line()  # "ready", or EOF if the shim died first
        directory = self._dir(record)
        for name in ("pid.json", "exit.json"):
            path = directory / name
            if path.exists():
                data = json.loads(path.read_bytes())
                return Started(int(data.get("pid", 0)), float(data["started_at"]))
        raise Internal(f"the shim of {record.id[:12]} exited before starting the command")

    def _pids(self, record: EngineContainer) -> tuple[int, int]:
        """(container pid, shim pid), or (0, 0) when unknown."""
        try:
            data = json.loads((self._dir(record) / "pid.json").read_bytes())
            return int(data["pid"]), int(data["shim_pid"])
        except (OSError, ValueError, KeyError):
            return 0, 0

    def _control_path(self, record: EngineContainer) -> str:
        """Where the shim takes connections for the container's input ("" if it has none)."""
        try:
            return str(json.loads((self._dir(record) / "pid.json").read_bytes())["control"])
        except (OSError, ValueError, KeyError):
            return ""

    def _take_input(self, record: EngineContainer) -> None:
        """Take a duplicate of the container's input from its shim. A shim that does not
        answer (the container ended meanwhile) leaves it without attachable input (an attach
        forwards nothing) and is logged, rather than failing a start or a re-adoption."""
        path = self._control_path(record)
        if not path or record.id in self._inputs:
            return
        try:
            self._inputs[record.id] = ShimInput.connect(path)
        except OSError as exc:
            log.warning("no input from the shim", container_id=record.id, error=str(exc))

    def running(self, record: EngineContainer) -> bool:
        alive = self._shim_alive(record)
        if alive:  # re-adopted: its input is attachable again at once
            self._take_input(record)
        return alive

    def _shim_alive(self, record: EngineContainer) -> bool:
        if (self._dir(record) / "exit.json").exists():
            return False
        _, shim_pid = self._pids(record)
        return shim_pid > 0 and HOST.alive(shim_pid)

    async def wait(self, record: EngineContainer) -> ExitStatus:
        shim = self._shims.get(record.id)
        if shim is not None:
            await shim.wait()
            self._shims.pop(record.id, None)
        else:
            _, shim_pid = self._pids(record)
            if shim_pid:
                await HOST.wait_foreign(shim_pid)
        self._close_input(record)
        return self._exit_status(record)

    def input(self, record: EngineContainer) -> int | None:
        held = self._inputs.get(record.id)
        return held.fd if held is not None else None

    def close_input(self, record: EngineContainer) -> None:
        held = self._inputs.get(record.id)
        if held is not None and not record.spec.tty:
            held.close_stdin()

    def _close_input(self, record: EngineContainer) -> None:
        held = self._inputs.pop(record.id, None)
        if held is not None:
            held.close()

    def resize(self, record: EngineContainer, rows: int, cols: int) -> None:
        fd = self.input(record)
        if fd is not None and record.spec.tty:
            from worker.engine.terminal import set_window_size  # Unix only, like ptys
            set_window_size(fd, rows, cols)

    def _exit_status(self, record: EngineContainer) -> ExitStatus:
        try:
            data = json.loads((self._dir(record) / "exit.json").read_bytes())
            return ExitStatus(int(data["exit_code"]), float(data["finished_at"]),
                              error=str(data.get("error", "")))
        except (OSError, ValueError, KeyError):
            # The shim itself died (killed with the worker's whole group, say): the exit is lost.
            return ExitStatus(255, time.time(), error="the container's shim vanished; its exit "
                              "status is unknown")

    async def signal(self, record: EngineContainer, signum: int, *, all_processes: bool = False
                     ) -> None:
        pid, _ = self._pids(record)
        if pid <= 0:
            return
        HOST.signal(pid, signum, container_id=record.id, all_processes=all_processes)

    async def processes(self, record: EngineContainer) -> list[int]:
        pid, _ = self._pids(record)
        if pid <= 0:
            return []
        return HOST.members(pid, record.id)

    async def exec(self, record: EngineContainer, request: ExecRequest) -> ExecProcess:
        merged = {**HOST.base_environment(),
                  **dict(item.split("=", 1) for item in record.env() + request.env
                         if "=" in item)}
        cwd = request.cwd if request.cwd and os.path.isdir(request.cwd) else None
        ours: list[int] = []
        theirs: list[int] = []
        try:
            if request.tty:
                if not HOST.terminals:
                    raise Unsupported("a tty exec needs ptys, which this host does not have")
                master, slave = os.openpty()
                ours.append(master)
                theirs.append(slave)
                if request.console_size is not None:
                    from worker.engine.terminal import set_window_size  # Unix only, like ptys
                    set_window_size(master, *request.console_size)
                argv = on_terminal(request.argv)
                stdio: tuple[int | None, int, int] = (slave, slave, slave)
            else:
                pipes = ExecPipes.open(request, ours, theirs)
                argv = list(request.argv)
                stdio = (pipes.stdin, pipes.stdout, pipes.stderr)
            try:
                proc = await HOST.start_exec(argv, env=merged, cwd=cwd, stdio=stdio,
                                             container_id=record.id)
            except OSError as exc:
                return _failed_exec(exc, request.argv[0], ours)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        if request.tty:
            return PlainExec(proc, stdin=os.dup(ours[0]) if request.stdin else None,
                             stdout=ours[0], stderr=None, tty=True)
        return PlainExec(proc, stdin=pipes.stdin_ours, stdout=pipes.stdout_ours,
                         stderr=pipes.stderr_ours, tty=False)

    async def cleanup(self, record: EngineContainer) -> None:
        control = self._control_path(record)
        if control and not self._shim_alive(record):  # a shim killed outright leaves its socket
            self._close_input(record)
            shutil.rmtree(os.path.dirname(control), ignore_errors=True)
        for name in ("pid.json", "exit.json"):
            (self._dir(record) / name).unlink(missing_ok=True)

    async def remove(self, record: EngineContainer) -> None:
        self._close_input(record)
        await self.cleanup(record)
        with contextlib.suppress(OSError):
            self._dir(record).rmdir()


    async def close(self) -> None:
        """Let go of the inputs; the shims keep theirs, and the containers their terminals."""
        for held in self._inputs.values():
            held.close()
        self._inputs.clear()


class PlainExec(ExecProcess):
    """A process the worker started itself (a child of the worker)."""

    def __init__(self, proc: Child, *, stdin: int | None, stdout: int,
                 stderr: int | None, tty: bool) -> None:
        super().__init__(pid=proc.pid, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)
        self._proc = proc

    async def _wait(self) -> int:
        code = await self._proc.wait()
        return code if code >= 0 else 128 - code

    def kill(self) -> None:
        self._proc.kill()


class FailedExec(ExecProcess):
    """A command that could not start: its message waits on stdout, its code is 126/127."""

    def __init__(self, code: int, stdout: int) -> None:
        super().__init__(pid=0, stdin=None, stdout=stdout, stderr=None, tty=False)
        self._exit_code = code

    async def _wait(self) -> int:
        return self._exit_code

    def kill(self) -> None:
        pass


def _failed_exec(exc: OSError, arg0: str, ours: list[int]) -> FailedExec:
    for fd in ours:
        os.close(fd)
    read_end, write_end = os.pipe()
    os.write(write_end, f"shoal: cannot run {arg0}: {exc.strerror}\n".encode())
    os.close(write_end)
    return FailedExec(126 if exc.errno == 13 else 127, read_end)


def _limits(record: EngineContainer) -> JobLimits:
    """What the container asks its processes to be held to, together."""
    resources = record.spec.resources
    return JobLimits(memory=resources.memory, millicpus=resources.millicpus,
                     processes=resources.pids, memory_swap=resources.memory_swap,
                     cpu_shares=resources.cpu_shares)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])

