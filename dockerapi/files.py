"""Copying files in and out of containers (``GET``/``HEAD``/``PUT /containers/{id}/archive``,
what ``docker cp`` calls) and ``GET /containers/{id}/export``, over the daemon's file verbs.

Tars are streamed both ways as they come, never held: out, the daemon's byte stream is copied
to the response; in, the request body is copied to the byte stream the daemon extracts from.
The path's stat goes in ``X-Docker-Container-Path-Stat`` (base64 of JSON, the mode as Go's
``os.FileMode``, which is how the docker CLI reads it)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import stat

from aiohttp import web

import channels
from dockerapi.containers import STATE, live_reader
from dockerapi.errors import ApiError, bad_parameter, from_shoal
from dockerapi.params import flag
from protocol.errors import ChannelError, NotFound, ShoalError, Unavailable
from protocol.messages import (
    ContainerArchive,
    ContainerPathStat,
    ExportContainer,
    GetContainerArchive,
    Ok,
    PathStat,
    PutContainerArchive,
    StatContainerPath,
)

PUT_CHUNK = 1 << 16
STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode type bits, as the docker CLI tests them (IsDir, symlink, ...).
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, \
    1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    """A st_mode as Go's ``os.FileMode``."""
    bits = mode & 0o777
    kind = stat.S_IFMT(mode)
    bits |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFIFO: _GO_PIPE,
             stat.S_IFSOCK: _GO_SOCKET, stat.S_IFBLK: _GO_DEVICE,
             stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV}.get(kind, 0)
    if mode & stat.S_ISUID:
        bits |= _GO_SETUID
    if mode & stat.S_ISGID:
        bits |= _GO_SETGID
    if mode & stat.S_ISVTX:
        bits |= _GO_STICKY
    return bits


def stat_header(found: PathStat) -> str:
    mtime = datetime.datetime.fromtimestamp(found.mtime, datetime.UTC)
    body = {"name": found.name, "size": found.size, "mode": go_file_mode(found.mode),
            "mtime": mtime.isoformat().replace("+00:00", "Z"),
            "linkTarget": found.link_target}
    return base64.b64encode(json.dumps(body).encode()).decode()


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise bad_parameter("path is required")
    return path


def _refusal(exc: ShoalError, ref: str, path: str) -> ApiError:
    """A missing path is Docker's "Could not find the file"; a missing container, "No such
    container"."""
    if isinstance(exc, NotFound) and "path" in exc.details:
        return ApiError(404, f"Could not find the file {path} in container {ref}")
    return from_shoal(exc, "container", ref)


async def archive_head(request: web.Request) -> web.Response:
    state, ref, path = request.app[STATE], request.match_info["id"], _path(request)
    try:
        found = (await state.verbs.ask(lambda r: StatContainerPath(id=ref, path=path, reply=r),
                                       ContainerPathStat)).stat
    except ShoalError as exc:
        raise _refusal(exc, ref, path) from None
    return web.Response(status=200, headers={STAT_HEADER: stat_header(found)})


async def archive_get(request: web.Request) -> web.StreamResponse:
    state, ref, path = request.app[STATE], request.match_info["id"], _path(request)
    try:
        answer = await state.verbs.ask(lambda r: GetContainerArchive(id=ref, path=path, reply=r),
                                       ContainerArchive)
    except ShoalError as exc:
        raise _refusal(exc, ref, path) from None
    return await _stream_tar(request, answer, {STAT_HEADER: stat_header(answer.stat)})


async def export(request: web.Request) -> web.StreamResponse:
    state, ref = request.app[STATE], request.match_info["id"]
    try:
        answer = await state.verbs.ask(lambda r: ExportContainer(id=ref, reply=r),
                                       ContainerArchive)
    except ShoalError as exc:
        raise from_shoal(exc, "container", ref) from None
    return await _stream_tar(request, answer, {})


async def _stream_tar(request: web.Request, answer: ContainerArchive,
                      headers: dict[str, str]) -> web.StreamResponse:
    data = live_reader(answer.data)
    try:
        response = web.StreamResponse(status=200, headers=headers)
        response.content_type = "application/x-tar"
        await response.prepare(request)
        try:
            async for chunk in data:
                await response.write(chunk)
        except ShoalError:
            # A failure midway cannot change the status any more: the tar ends short and
            # its reader finds it truncated, as with docker.
            response.force_close()
            return response
        await response.write_eof()
        return response
    finally:
        data.close()


async def archive_put(request: web.Request) -> web.Response:
    """``PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=``: the body
    (a tar) goes to the daemon as it arrives."""
    state, ref, path = request.app[STATE], request.match_info["id"], _path(request)
    no_overwrite = flag(request, "noOverwriteDirNonDir")
    copy_owner = flag(request, "copyUIDGID")
    writer, reader = channels.byte_pipe()
    answer = asyncio.ensure_future(state.verbs.ask(lambda r: PutContainerArchive(
        id=ref, path=path, no_overwrite_dir_non_dir=no_overwrite, copy_uid_gid=copy_owner,
        data=reader, reply=r), Ok))
    try:
        whole = False
        try:
            async for chunk in request.content.iter_chunked(PUT_CHUNK):
                if answer.done():
                    break  # refused before the end: its error is the answer
                await writer.write(chunk)
            whole = True
        except ChannelError:
            whole = True  # the daemon stopped reading: its answer says why
        finally:
            if whole:
                writer.close()
            else:  # the client went away mid-body: the daemon must not take a cut tar
                writer.abort(Unavailable("the client went away before the end of the tar"))
        await answer
    except ShoalError as exc:
        raise _refusal(exc, ref, path) from None
    finally:
        if not answer.done():
            answer.cancel()
    return web.Response(status=200)
