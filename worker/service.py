"""The container verbs over channels: what a worker answers to a client (or a scheduler).

Each request carries its reply Sender. Single answers are sent with ``last``; logs, events and
exec stream on the reply channel and then close it; a refusal aborts it with the engine's typed
error, which the caller raises as the same class.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import structlog

import channels
from protocol.errors import ChannelError, InvalidArgument, Unsupported
from protocol.messages import (
    AttachContainer,
    Attached,
    ContainerCreated,
    ContainerExited,
    ContainerInspected,
    ContainerList,
    ContainerLogs,
    ContainerProcesses,
    ContainerStats,
    CreateContainer,
    ExecContainer,
    ExecExited,
    ExecStarted,
    GetVersion,
    InspectContainer,
    KillContainer,
    ListContainers,
    LogLine,
    Message,
    Ok,
    PauseContainer,
    RemoveContainer,
    RenameContainer,
    RestartContainer,
    StartContainer,
    StatsContainer,
    StopContainer,
    TerminalSize,
    TopContainer,
    UnpauseContainer,
    UpdateContainer,
    VersionInfo,
    WaitContainer,
    WatchEvents,
)
from protocol.platforms import host_platform, validate
from protocol.specs import AFFINITIES_LABEL, CONSTRAINTS_LABEL, ContainerSpec, Platform
from protocol.version import PROTOCOL_VERSION, package_version
from worker.engine.changes import SAMPLED
from worker.engine.engine import Engine
from worker.exec_session import ExecSession
from worker.streams import copy_in

log = structlog.get_logger("shoal.worker")


class WorkerService:
    """Answers the container verbs from one engine."""

    def __init__(self, engine: Engine, platform: Platform | None = None) -> None:
        self.engine = engine
        # The platform it reports and runs: the host's, unless a test overrides it
        # (``shoal worker --platform-override``).
        self.platform = platform or host_platform()

    async def handle(self, message: Message) -> Message | None:
        engine = self.engine
        match message:
            case GetVersion():
                return VersionInfo(version=package_version(), protocol=PROTOCOL_VERSION,
                                   component="worker", os=self.platform.os,
                                   arch=self.platform.arch)
            case CreateContainer(spec=spec, registry=registry):
                refuse_placement_rules(spec, self.platform)
                if registry is not None:
                    raise InvalidArgument("registry access with a create is for a scheduler's "
                                          "workers: pull the image into this worker first")
                record = await engine.create(spec)
                return ContainerCreated(id=record.id)
            case StartContainer(id=ref):
                await engine.start(ref)
                return Ok()
            case StopContainer(id=ref, timeout=timeout):
                await engine.stop(ref, timeout)
                return Ok()
            case KillContainer(id=ref, signal=sig):
                await engine.kill(ref, sig)
                return Ok()
            case RestartContainer(id=ref, timeout=timeout):
                await engine.restart(ref, timeout)
                return Ok()
            case RemoveContainer(id=ref, force=force):
                await engine.remove(ref, force=force)
                return Ok()
            case ListContainers(all=all_):
                return ContainerList(containers=engine.ps(all=all_))
            case InspectContainer(id=ref):
                return ContainerInspected(info=engine.inspect(ref))
            case TopContainer(id=ref):
                return await self._top(ref)
            case PauseContainer(id=ref):
                await engine.changes.pause(ref)
                return Ok()
            case UnpauseContainer(id=ref):
                await engine.changes.unpause(ref)
                return Ok()
            case RenameContainer(id=ref, name=name):
                await engine.changes.rename(ref, name)
                return Ok()
            case UpdateContainer():
                await engine.changes.update(message)
                return Ok()
            case StatsContainer():
                await self._stats(message)
                return None
            case WaitContainer(id=ref, condition=condition):
                record = engine.find(ref)
                state = await engine.wait(ref, condition)
                return ContainerExited(id=record.id, exit_code=state.exit_code or 0,
                                       error=state.error)
            case ContainerLogs():
                await self._logs(message)
                return None
            case WatchEvents():
                await self._events(message)
                return None
            case ExecContainer():
                await self._exec(message)
                return None
            case AttachContainer():
                await self._attach(message)
                return None
        raise Unsupported(f"a worker does not serve {type(message).__name__}")

    async def _top(self, ref: str) -> ContainerProcesses:
        pids = await self.engine.top(ref)
        rows = []
        for pid in pids:
            command = ""
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
            rows.append([str(pid), command])
        return ContainerProcesses(titles=["PID", "CMD"], processes=rows)

    async def _stats(self, request: StatsContainer) -> None:
        """A sample at once; with ``stream`` one every ``interval`` while the container runs,
        until the caller closes the reply."""
        reply = request.reply
        assert isinstance(reply, channels.Sender)
        changes = self.engine.changes
        closed = asyncio.ensure_future(reply.wait_closed())
        try:
            while True:
                record, sample = await changes.sample(request.id)
                await reply.send(ContainerStats(id=record.id, name=record.name, sample=sample))
                if not request.stream or record.state.status not in SAMPLED:
                    break
                await asyncio.wait({closed}, timeout=request.interval)
                if closed.done():
                    return
        except ChannelError:
            return  # the caller went away
        finally:
            closed.cancel()
        reply.close()

    async def _logs(self, request: ContainerLogs) -> None:
        reply = request.reply
        assert isinstance(reply, channels.Sender)
        streams = {s for s, wanted in (("stdout", request.stdout), ("stderr", request.stderr))
                   if wanted}
        entries = self.engine.logs(request.id, follow=request.follow, tail=request.tail,
                                   since=request.since)
        closed = asyncio.ensure_future(reply.wait_closed())
        try:
            async for entry in entries:
                if entry.stream in streams:
                    await reply.send(LogLine(stream=entry.stream, time=entry.time,
                                             data=entry.data))
                if closed.done():
                    return  # the client went away mid-follow: stop reading for it
        except ChannelError:
            return
        finally:
            closed.cancel()
            await entries.aclose()
        reply.close()

    async def _attach(self, request: AttachContainer) -> None:
        """Output from now until the next exit, on byte streams (one with a tty); the client's
        ``stdin`` goes to the container's stdin or terminal once it runs; the reply closes at
        the exit. With a tty, TerminalSize messages on ``resize`` set the window size."""
        reply = request.reply
        assert isinstance(reply, channels.Sender)
        engine = self.engine
        record = engine.find(request.id)
        if request.size is not None:
            engine.resize(record.id, request.size.rows, request.size.cols)
        stdin = request.stdin if isinstance(request.stdin, channels.ByteReader) else None
        entries = engine.attach(request.id)
        out_w, out_r = channels.byte_pipe()
        err_w, err_r = channels.byte_pipe()
        resize_tx, resize_rx = channels.pipe() if record.spec.tty else (None, None)
        helpers: list[asyncio.Task[None]] = []
        if stdin is not None:
            helpers.append(asyncio.ensure_future(self._attach_input(record.id, stdin)))
        if resize_rx is not None:
            helpers.append(asyncio.ensure_future(self._resizes(record.id, resize_rx)))
        try:
            await reply.send(Attached(stdout=out_r, stderr=None if record.spec.tty else err_r,
                                      resize=resize_tx))
            async for entry in entries:
                await (out_w if entry.stream == "stdout" else err_w).write(entry.data)
        except ChannelError:
            return  # the client went away
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if stdin is not None:
                stdin.close()
            if resize_rx is not None:
                resize_rx.close()
            await entries.aclose()
            out_w.close()
            err_w.close()
        reply.close()

    async def _attach_input(self, ref: str, stdin: channels.ByteReader) -> None:
        fd = await self.engine.attach_input(ref)
        if fd is None:
            stdin.close()
            return
        try:
            await copy_in(stdin, fd, at_end=lambda: self.engine.close_input(ref))
        finally:
            os.close(fd)

    async def _resizes(self, ref: str, receiver: channels.Receiver) -> None:
        with contextlib.suppress(ChannelError):
            async for message in receiver:
                if isinstance(message, TerminalSize):
                    self.engine.resize(ref, message.rows, message.cols)

    async def _events(self, request: WatchEvents) -> None:
        reply = request.reply
        assert isinstance(reply, channels.Sender)
        await channels.stream_events(self.engine.events, reply, request.since, request.filters)

    async def _exec(self, request: ExecContainer) -> None:
        """Stream a process's stdio live: ExecStarted names the output streams (and a resize
        Sender with a tty); the client's ``stdin`` goes in; at the exit the output streams end
        and ExecExited follows. A client that goes away kills the process."""
        reply = request.reply
        assert isinstance(reply, channels.Sender)
        stdin = request.stdin if isinstance(request.stdin, channels.ByteReader) else None
        try:
            process = await self.engine.exec_start(
                request.id, list(request.command), env=request.env, workdir=request.workdir,
                user=request.user, tty=request.tty, stdin=stdin is not None,
                console_size=(request.size.rows, request.size.cols) if request.size else None)
        except BaseException:
            if stdin is not None:
                stdin.close()
            raise
        exec_id = f"{request.id[:12]}-{process.pid}"
        session = ExecSession(process, stdin)
        try:
            await reply.send(ExecStarted(exec_id=exec_id, stdout=session.stdout,
                                         stderr=session.stderr, resize=session.resize))
            code = await session.run(reply)
            if code is not None:
                await reply.send(ExecExited(exec_id=exec_id, exit_code=code), last=True)
        except ChannelError:
            return  # the client went away; the session has killed and reaped the process
        finally:
            await session.close()


def refuse_placement_rules(spec: ContainerSpec, host: Platform | None = None) -> None:
    """A worker asked directly runs the container itself, so it cannot honour the rules that
    choose among a cluster's nodes: refuse them rather than ignore them. A platform is
    honoured: ``host`` (default this host's), or a refusal that names both."""
    # Swarm classic's rules carried in labels are rules too (a scheduler reads them).
    carried = [f"{k}={v}" for k, v in spec.labels.items()
               if k in (CONSTRAINTS_LABEL, AFFINITIES_LABEL)]
    if spec.constraints or spec.affinities or spec.max_per_node or spec.preferences or carried:
        rules = [*spec.constraints, *spec.affinities, *carried,
                 *([f"max_per_node={spec.max_per_node}"] if spec.max_per_node else []),
                 *spec.preferences]
        raise Unsupported(
            f"placement rules ({', '.join(rules[:3])}{', ...' if len(rules) > 3 else ''}) "
            "choose among a cluster's nodes; this worker runs what it is given: send the "
            "container to a scheduler", details={"rules": str(len(rules))})
    wanted = [spec.platform] if spec.platform is not None else spec.platforms
    if wanted:
        host = host or host_platform()
        for want_os, want_arch, want_variant in (validate(p) for p in wanted):
            if want_os == host.os and (not want_arch or want_arch == host.arch) and \
                    (not want_variant or not host.variant or want_variant == host.variant):
                return  # one of the platforms it accepts
        asked = " or ".join(str(p) for p in wanted)
        raise Unsupported(f"this worker is {host}; the container asks for {asked}",
                          details={"platform": asked})
