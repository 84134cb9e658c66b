"""The container endpoints: lifecycle, listing and inspect, wait, logs and attach.

Each handler turns one request into the daemon's verbs and their answers into Docker's shapes.
On a scheduler a container reaches a worker only once started, so an attach or a wait asked
before the start (as ``docker run`` asks them) follows the cluster's record instead
(``dockerapi.cluster``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

import channels
from dockerapi import cluster
from dockerapi.create import spec_from_create
from dockerapi.errors import ApiError, bad_parameter, from_shoal, missing
from dockerapi.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    STDERR,
    STDOUT,
    RawInput,
    flush_head,
    frame,
    hijack,
)
from dockerapi.params import filters, flag, integer, timestamp
from dockerapi.state import FrontState, send_size
from dockerapi.views import container_row, inspect_container, iso_time
from protocol.errors import ChannelError, Conflict, NotFound, ShoalError
from protocol.messages import (
    AttachContainer,
    Attached,
    ContainerCreated,
    ContainerExited,
    ContainerInspected,
    ContainerList,
    ContainerLogs,
    ContainerProcesses,
    CreateContainer,
    InspectContainer,
    InspectNode,
    KillContainer,
    ListContainers,
    ListNetworks,
    ListVolumes,
    LogLine,
    NetworkList,
    NodeInspected,
    Ok,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
    TopContainer,
    VolumeList,
    WaitContainer,
)
from protocol.observed import ContainerInfo, ContainerSummary
from protocol.specs import NetworkInfo

STATE = web.AppKey("state", FrontState)
MAX_CREATE_BODY = 1 << 20
LIST_FILTERS = ("name", "label", "status", "ancestor", "id", "node", "health", "network",
                "volume")
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def _state(request: web.Request) -> FrontState:
    return request.app[STATE]


async def read_json(request: web.Request, limit: int = MAX_CREATE_BODY) -> Any:
    """The request's JSON body (null when empty), bounded."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body over {limit} bytes")
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"request body over {limit} bytes")
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_parameter(f"invalid JSON: {exc}") from None


async def inspect_info(state: FrontState, ref: str) -> ContainerInfo:
    try:
        return (await state.verbs.ask(lambda r: InspectContainer(id=ref, reply=r),
                                      ContainerInspected)).info
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None


async def _ok(state: FrontState, ref: str, make: Any) -> None:
    try:
        await state.verbs.ask(make, Ok)
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None


def live_reader(ref: object) -> channels.ByteReader:
    """A byte stream the daemon sent, as the live object the session made of it."""
    if not isinstance(ref, channels.ByteReader):
        raise ApiError(500, f"expected a byte stream from the daemon, got {type(ref).__name__}")
    return ref


def live_sender(ref: object) -> channels.Sender | None:
    return ref if isinstance(ref, channels.Sender) else None


def _ref(request: web.Request) -> str:
    return request.match_info["id"]


async def create(request: web.Request) -> web.Response:
    state = _state(request)
    spec = spec_from_create(await read_json(request), request.query.get("name", ""),
                            request.query.get("platform", ""), await state.default_network())
    try:
        created = await state.verbs.ask(lambda r: CreateContainer(spec=spec, reply=r),
                                        ContainerCreated)
    except NotFound as exc:
        raise ApiError(404, f"No such image: {spec.image}") if "image" in str(exc).lower() \
            else from_shoal(exc) from None
    except ShoalError as exc:
        raise from_shoal(exc) from None
    return web.json_response({"Id": created.id, "Warnings": list(created.warnings)},
                             status=201)


async def start(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    if request.query.get("detachKeys"):
        raise bad_parameter("detachKeys is not supported")
    if (await inspect_info(state, ref)).state.status == "running":
        return web.Response(status=304)  # Docker's answer; the verb itself would accept it
    await _ok(state, ref, lambda r: StartContainer(id=ref, reply=r))
    if await state.on_scheduler():
        # Docker answers once the container runs; a scheduler, once the start is committed.
        await cluster.started(state.verbs, ref)
    return web.Response(status=204)


def _timeout(request: web.Request) -> float | None:
    if "t" not in request.query and "timeout" not in request.query:
        return None
    seconds = integer(request, "t" if "t" in request.query else "timeout", -1)
    return None if seconds < 0 else float(seconds)


async def stop(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    timeout = _timeout(request)
    info = await inspect_info(state, ref)
    if info.state.status not in ("running", "restarting", "paused"):
        return web.Response(status=304)
    await _ok(state, ref, lambda r: StopContainer(id=ref, timeout=timeout, reply=r))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    timeout = _timeout(request)
    await _ok(state, ref, lambda r: RestartContainer(id=ref, timeout=timeout, reply=r))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    signal = request.query.get("signal", "") or "KILL"
    info = await inspect_info(state, ref)
    if info.state.status not in ("running", "restarting", "paused"):
        raise ApiError(409, f"Cannot kill container: {ref}: Container {info.id} is not "
                            "running")
    try:
        await state.verbs.ask(lambda r: KillContainer(id=ref, signal=signal.upper(), reply=r),
                              Ok)
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    if flag(request, "link"):
        raise bad_parameter("removing a link is not supported: shoal has no links")
    force = flag(request, "force")
    on_scheduler = await state.on_scheduler()
    asked_at = time.time() - 1.0  # the destroy event is looked for from here
    cid = (await inspect_info(state, ref)).id if on_scheduler else ref
    try:
        await state.verbs.ask(lambda r: RemoveContainer(id=ref, force=force, reply=r), Ok)
    except Conflict as exc:
        raise ApiError(409, f"You cannot remove a running container {ref}. Stop the "
                            f"container before attempting removal or force remove ({exc})") \
            from None
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None
    if on_scheduler:
        await cluster.removed(state.verbs, cid, asked_at)  # Docker answers once it is gone
    return web.Response(status=204)


def _matches(row: ContainerSummary, wanted: dict[str, list[str]]) -> bool:
    """Docker's list filters: every key must match, any value of a key will do."""
    def one(key: str, value: str) -> bool:
        if key == "name":
            return value.removeprefix("/") in row.name
        if key == "id":
            return row.id.startswith(value)
        if key == "status":
            return row.state.status == value
        if key == "node":
            return row.node_id == value
        if key == "health":
            health = row.state.health
            return (health.status if health is not None else "none") == value
        if key == "ancestor":
            image = row.image
            return image == value or image.split(":")[0] == value or \
                image == f"{value}:latest"
        label, _, want = value.partition("=")
        return label in row.labels and (not want or row.labels[label] == want)
    # Docker: every label filter must match; any value of another key will do.
    return all((all if key == "label" else any)(one(key, v) for v in values)
               for key, values in wanted.items() if values)


async def list_(request: web.Request) -> web.Response:
    state = _state(request)
    wanted = filters(request, LIST_FILTERS)
    limit = integer(request, "limit", -1)
    all_ = flag(request, "all") or limit > 0 or bool(wanted.get("status"))
    try:
        rows = (await state.verbs.ask(lambda r: ListContainers(all=all_, reply=r),
                                      ContainerList)).containers
    except ShoalError as exc:
        raise from_shoal(exc) from None
    network, volume = wanted.pop("network", []), wanted.pop("volume", [])
    if network or volume:
        rows = await _using(state, rows, network, volume)
    chosen = [container_row(row) for row in rows if _matches(row, wanted)]
    return web.json_response(chosen[:limit] if limit > 0 else chosen)


async def _using(state: FrontState, rows: list[ContainerSummary], networks: list[str],
                 volumes: list[str]) -> list[ContainerSummary]:
    """The rows of containers on one of ``networks`` (by name or id) and mounting one of
    ``volumes`` (the filters Compose lists a project's users of a network or volume by)."""
    keep = {row.id for row in rows}
    try:
        if networks:
            found = (await state.verbs.ask(lambda r: ListNetworks(reply=r), NetworkList))
            keep &= {e.container_id for n in found.networks
                     if n.spec.name in networks or any(n.id.startswith(w) for w in networks)
                     for e in n.endpoints}
        if volumes:
            held = (await state.verbs.ask(lambda r: ListVolumes(reply=r), VolumeList))
            users = {u for v in held.volumes if v.spec.name in volumes for u in v.users}
            keep &= {row.id for row in rows if row.id in users or row.name in users}
    except ShoalError as exc:
        raise from_shoal(exc) from None
    return [row for row in rows if row.id in keep]


async def inspect(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    info = await inspect_info(state, ref)
    node = None
    if info.node_id and await state.on_scheduler():
        with contextlib.suppress(ShoalError):
            node = (await state.verbs.ask(lambda r: InspectNode(node_id=info.node_id, reply=r),
                                          NodeInspected)).info
    networks: list[NetworkInfo] = []
    if info.spec.network not in ("", "none", "host"):
        with contextlib.suppress(ShoalError):  # the endpoints only add detail to inspect
            networks = list((await state.verbs.ask(lambda r: ListNetworks(reply=r),
                                                   NetworkList)).networks)
    return web.json_response(inspect_container(info, node, networks))


async def top(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    if request.query.get("ps_args"):
        raise bad_parameter("ps_args is not supported: shoal lists PID and CMD")
    try:
        got = await state.verbs.ask(lambda r: TopContainer(id=ref, reply=r),
                                    ContainerProcesses)
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None
    return web.json_response({"Titles": list(got.titles),
                              "Processes": [list(p) for p in got.processes]})


async def wait(request: web.Request) -> web.StreamResponse:
    state, ref = _state(request), _ref(request)
    condition = request.query.get("condition", "") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise bad_parameter(f"invalid condition: {condition!r}")
    info = await inspect_info(state, ref)  # a missing container is a 404 before the head
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    flush_head(await response.prepare(request))  # docker's CLI waits for the head to start
    try:
        code, error = await _wait_exit(state, info, condition)
        body: dict[str, Any] = {"StatusCode": code,
                                "Error": {"Message": error} if error else None}
    except ShoalError as exc:
        body = {"StatusCode": -1, "Error": {"Message": str(exc)}}
    await response.write(json.dumps(body).encode() + b"\n")
    await response.write_eof()
    return response


async def _wait_exit(state: FrontState, info: ContainerInfo, condition: str,
                     ) -> tuple[int, str]:
    cid = info.id
    try:
        exited = await state.verbs.ask(
            lambda r: WaitContainer(id=cid, condition=condition,  # type: ignore[arg-type]
                                    reply=r), ContainerExited)
        return exited.exit_code, exited.error
    except (NotFound, Conflict):
        if not await state.on_scheduler():
            raise
    return await cluster.wait(state.verbs, info, condition)


async def resize(request: web.Request) -> web.Response:
    state, ref = _state(request), _ref(request)
    height, width = integer(request, "h", 0), integer(request, "w", 0)
    if not (1 <= height <= 10000 and 1 <= width <= 10000):
        raise bad_parameter(f"bad terminal size {height}x{width}")
    info = await inspect_info(state, ref)
    if not await send_size(state.resizers.get(info.id), height, width) and \
            info.state.status != "running":
        raise ApiError(409, f"Container {info.id} is not running")
    return web.Response(status=200)


async def logs(request: web.Request) -> web.StreamResponse:
    state, ref = _state(request), _ref(request)
    stdout, stderr = flag(request, "stdout"), flag(request, "stderr")
    if not (stdout or stderr):
        raise bad_parameter("Bad parameters: you must choose at least one stream")
    tail_text = request.query.get("tail", "all") or "all"
    if tail_text != "all" and not tail_text.isdigit():
        raise bad_parameter(f"invalid value for tail: {tail_text!r}")
    tail = -1 if tail_text == "all" else int(tail_text)
    since, until = timestamp(request, "since"), timestamp(request, "until")
    follow, stamps = flag(request, "follow"), flag(request, "timestamps")
    info = await inspect_info(state, ref)
    tty = info.spec.tty
    try:
        lines = await state.verbs.open(lambda r: ContainerLogs(
            id=info.id, follow=follow, tail=tail, since=since, stdout=stdout, stderr=stderr,
            reply=r))
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None
    response = web.StreamResponse(status=200)
    response.content_type = RAW_STREAM if tty else MULTIPLEXED_STREAM
    prepared = False
    try:
        async for line in lines:
            if not isinstance(line, LogLine):
                continue
            if until and line.time > until:
                break
            if not prepared:
                await response.prepare(request)
                prepared = True
            data = (iso_time(line.time).encode() + b" " + line.data) if stamps else line.data
            await response.write(data if tty else frame(
                STDOUT if line.stream == "stdout" else STDERR, data))
    except ShoalError as exc:
        if not prepared:
            raise from_shoal(exc, "container", ref) from None
    finally:
        lines.close()
    if not prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


async def attach(request: web.Request) -> web.StreamResponse:
    state, ref = _state(request), _ref(request)
    if request.query.get("detachKeys"):
        raise bad_parameter("detachKeys is not supported")
    want_stdin = flag(request, "stdin")
    want = {"stdout": flag(request, "stdout"), "stderr": flag(request, "stderr")}
    info = await inspect_info(state, ref)
    if want_stdin and not info.spec.stdin_open:
        want_stdin = False  # Docker: a container without OpenStdin has no stdin to attach
    tty = info.spec.tty
    stdin_w, stdin_r = channels.byte_pipe() if want_stdin else (None, None)
    try:
        attached: Attached | None = await state.verbs.ask(lambda r: AttachContainer(
            id=info.id, stdin=stdin_r, size=None, reply=r), Attached)
    except (NotFound, Conflict) as exc:
        if not await state.on_scheduler():
            raise from_shoal(exc, "container", ref) from None
        if want_stdin:
            raise bad_parameter("attaching stdin through a scheduler is not supported: run "
                                "detached, then exec") from None
        attached = None
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None
    response, reader = await hijack(request, RAW_STREAM if tty else MULTIPLEXED_STREAM)
    if flag(request, "logs"):
        await _replay_logs(state, info, response, tty, want)
    if attached is None:
        await cluster.follow(state.verbs, info, response, tty, want)
        return response
    resizer = live_sender(attached.resize)
    if resizer is not None:
        state.resizers[info.id] = resizer
    feeding = asyncio.ensure_future(feed_stdin(reader, stdin_w))
    try:
        streams = [(live_reader(attached.stdout), STDOUT, want["stdout"])]
        if attached.stderr is not None:
            streams.append((live_reader(attached.stderr), STDERR, want["stderr"]))
        await asyncio.gather(*(copy_out(source, response, number, tty, wanted)
                               for source, number, wanted in streams))
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        if stdin_w is not None:
            stdin_w.close()
        if resizer is not None and state.resizers.get(info.id) is resizer:
            state.resizers.pop(info.id, None)
    return response


async def _replay_logs(state: FrontState, info: ContainerInfo, response: web.StreamResponse,
                       tty: bool, want: dict[str, bool]) -> None:
    lines = await state.verbs.open(lambda r: ContainerLogs(
        id=info.id, stdout=want["stdout"], stderr=want["stderr"], reply=r))
    try:
        async for line in lines:
            if isinstance(line, LogLine):
                await response.write(line.data if tty else frame(
                    STDOUT if line.stream == "stdout" else STDERR, line.data))
    except (ShoalError, ConnectionError):
        pass
    finally:
        lines.close()


async def copy_out(source: channels.ByteReader, response: web.StreamResponse, stream: int,
                   tty: bool, wanted: bool) -> None:
    """One output stream to the client, framed unless on a terminal; read to its end even
    when the client did not ask for it, so the process never waits on it."""
    try:
        async for data in source:
            if wanted:
                await response.write(data if tty else frame(stream, data))
    except (ChannelError, ConnectionError):
        pass
    finally:
        source.close()


async def feed_stdin(reader: RawInput, writer: channels.ByteWriter | None) -> None:
    """The client's bytes to the container's stdin; its half-close closes stdin."""
    while data := await reader.read():
        if writer is None:
            continue  # nothing takes input: what the client sends is dropped, as Docker does
        try:
            await writer.write(data)
        except ChannelError:
            return
    if writer is not None:
        writer.close()


async def prune(request: web.Request) -> web.Response:
    state = _state(request)
    wanted = filters(request, ("label",))
    try:
        rows = (await state.verbs.ask(lambda r: ListContainers(all=True, reply=r),
                                      ContainerList)).containers
    except ShoalError as exc:
        raise from_shoal(exc) from None
    deleted = []
    for row in rows:
        if row.state.status in ("exited", "dead", "created") and _matches(row, wanted):
            try:
                await state.verbs.ask(_remover(row.id), Ok)
            except ShoalError:
                continue  # started or removed meanwhile: not pruned
            deleted.append(row.id)
    return web.json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})


def _remover(cid: str) -> Callable[[channels.Sender], RemoveContainer]:
    return lambda r: RemoveContainer(id=cid, reply=r)


async def not_served(request: web.Request) -> web.Response:
    """Container endpoints whose feature shoal does not have (one answer per feature)."""
    feature = {"changes": "changes"}[request.match_info["verb"]]
    await inspect_info(_state(request), _ref(request))  # a missing container: 404 first
    raise missing(feature)


