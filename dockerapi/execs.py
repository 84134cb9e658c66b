"""The exec endpoints: create (remembered here by id), start with the hijacked connection,
resize, inspect. One ``container.exec`` verb runs the process; Docker's two-step shape is kept
in ``FrontState.execs``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

import channels
from dockerapi.containers import (
    STATE,
    copy_out,
    feed_stdin,
    inspect_info,
    live_reader,
    live_sender,
    read_json,
)
from dockerapi.errors import ApiError, bad_parameter, from_shoal, no_such
from dockerapi.hijack import MULTIPLEXED_STREAM, RAW_STREAM, STDERR, STDOUT, frame, hijack
from dockerapi.params import integer
from dockerapi.state import ExecInstance, FrontState, send_size
from protocol.errors import ChannelError, ShoalError
from protocol.messages import ExecContainer, ExecExited, ExecStarted, TerminalSize

_EXEC_FIELDS = {"AttachStdin", "AttachStdout", "AttachStderr", "Tty", "Cmd", "Env",
                "WorkingDir", "User", "Privileged", "DetachKeys", "ConsoleSize", "Detach",
                "Container"}  # docker-py repeats the container it names in the path


def _instance(request: web.Request) -> tuple[FrontState, ExecInstance]:
    state = request.app[STATE]
    exec_id = request.match_info["id"]
    instance = state.execs.get(exec_id)
    if instance is None:
        raise no_such("exec instance", exec_id)
    return state, instance


async def create(request: web.Request) -> web.Response:
    state, ref = request.app[STATE], request.match_info["id"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_parameter("exec: expected a JSON object")
    unknown = sorted(k for k, v in body.items() if k not in _EXEC_FIELDS and v)
    if unknown:
        raise bad_parameter(f"exec: {', '.join(unknown)} not supported")
    if body.get("Privileged"):
        raise bad_parameter("exec: Privileged is not supported")
    if body.get("DetachKeys"):
        raise bad_parameter("exec: DetachKeys is not supported")
    command = body.get("Cmd")
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not command or \
            not all(isinstance(c, str) for c in command):
        raise bad_parameter("No exec command specified")
    env = body.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise bad_parameter("exec: Env must be a list of strings")
    info = await inspect_info(state, ref)
    if info.state.status == "paused":
        raise ApiError(409, f"Container {info.id} is paused, unpause the container before exec")
    if info.state.status != "running":
        raise ApiError(409, f"Container {info.id} is not running")
    instance = state.new_exec(
        container=info.id, command=command, env=env, workdir=str(body.get("WorkingDir") or ""),
        user=str(body.get("User") or ""), tty=bool(body.get("Tty")),
        stdin=bool(body.get("AttachStdin")), stdout=bool(body.get("AttachStdout")),
        stderr=bool(body.get("AttachStderr")))
    return web.json_response({"Id": instance.id}, status=201)


def _size(body: dict[str, Any]) -> TerminalSize | None:
    size = body.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) for n in size) \
            and all(1 <= n <= 10000 for n in size):
        return TerminalSize(rows=size[0], cols=size[1])
    return None


async def start(request: web.Request) -> web.StreamResponse:
    state, instance = _instance(request)
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise bad_parameter("exec start: expected a JSON object")
    if instance.started:
        raise ApiError(409, f"exec {instance.id} has already started")
    tty = bool(body.get("Tty", instance.tty))
    if body.get("Detach"):
        answers, first, stdin_w = await _open(state, instance, tty, body)
        task = asyncio.ensure_future(_finish(instance, answers, first, stdin_w))
        state.background.add(task)
        task.add_done_callback(state.background.discard)
        return web.Response(status=200)
    # As Docker does, the stream's head goes out before the process starts: a client that
    # reads the head through a buffered reader and then reads the bare socket (docker-py)
    # would lose output that arrived with the head. A failure to start is then told in the
    # stream, in Docker's words.
    instance.started = True
    response, reader = await hijack(request, RAW_STREAM if tty else MULTIPLEXED_STREAM)
    try:
        answers, first, stdin_w = await _open(state, instance, tty, body)
    except ApiError as exc:
        instance.started = False
        text = (exc.message + "\r\n").encode()
        with contextlib.suppress(ConnectionError):
            await response.write(text if tty else frame(STDOUT, text))
        return response
    feeding = asyncio.ensure_future(feed_stdin(reader, stdin_w))
    try:
        streams = [copy_out(live_reader(first.stdout), response, STDOUT, tty,
                            instance.stdout)]
        if first.stderr is not None:
            streams.append(copy_out(live_reader(first.stderr), response, STDERR, tty,
                                    instance.stderr))
        await asyncio.gather(*streams)
        await _exit_code(instance, answers)
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        if stdin_w is not None:
            stdin_w.close()
        answers.close()
        instance.running = False
        instance.resize = None
    return response


async def _open(state: FrontState, instance: ExecInstance, tty: bool, body: dict[str, Any]
                ) -> tuple[channels.Receiver, ExecStarted, channels.ByteWriter | None]:
    """Start the exec's process: its answers, the ExecStarted with its streams, and the
    writer of its stdin (None without one)."""
    stdin_w, stdin_r = channels.byte_pipe() if instance.stdin else (None, None)
    try:
        answers = await state.verbs.open(lambda r: ExecContainer(
            id=instance.container, command=instance.command, env=instance.env,
            workdir=instance.workdir, user=instance.user, tty=tty, stdin=stdin_r,
            size=_size(body), reply=r))
        first = await answers.recv()
    except ShoalError as exc:
        raise from_shoal(exc, "container", instance.container) from None
    if not isinstance(first, ExecStarted):
        answers.close()
        raise ApiError(500, f"expected ExecStarted, got {type(first).__name__}")
    instance.started = instance.running = True
    instance.resize = live_sender(first.resize)
    return answers, first, stdin_w


async def _exit_code(instance: ExecInstance, answers: channels.Receiver) -> None:
    try:
        async for message in answers:
            if isinstance(message, ExecExited):
                instance.exit_code = message.exit_code
    except ShoalError:
        pass


async def _finish(instance: ExecInstance, answers: channels.Receiver, started: ExecStarted,
                  stdin: channels.ByteWriter | None) -> None:
    """A detached exec: its output is read and dropped, its exit code kept."""
    if stdin is not None:
        stdin.close()
    try:
        drains = [_drain(live_reader(started.stdout))] + (
            [_drain(live_reader(started.stderr))] if started.stderr is not None else [])
        await asyncio.gather(*drains)
        await _exit_code(instance, answers)
    finally:
        answers.close()
        instance.running = False
        instance.resize = None


async def _drain(source: channels.ByteReader) -> None:
    try:
        async for _ in source:
            pass
    except ChannelError:
        pass


async def resize(request: web.Request) -> web.Response:
    _, instance = _instance(request)
    height, width = integer(request, "h", 0), integer(request, "w", 0)
    if not (1 <= height <= 10000 and 1 <= width <= 10000):
        raise bad_parameter(f"bad terminal size {height}x{width}")
    if not await send_size(instance.resize, height, width) and not instance.running:
        raise ApiError(409, f"exec {instance.id} is not running")
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.Response:
    _, instance = _instance(request)
    return web.json_response({
        "ID": instance.id, "Running": instance.running,
        "ExitCode": instance.exit_code, "ContainerID": instance.container,
        "OpenStdin": instance.stdin, "OpenStdout": instance.stdout,
        "OpenStderr": instance.stderr, "CanRemove": False, "DetachKeys": "", "Pid": 0,
        "ProcessConfig": {"tty": instance.tty, "entrypoint": instance.command[0],
                          "arguments": instance.command[1:], "privileged": False,
                          "user": instance.user}})
