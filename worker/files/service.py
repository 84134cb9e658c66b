"""The file verbs of a worker: a container path's stat, a tar of it out, a tar into it, the
whole root filesystem out (``export``).

A running container is reached as its processes see it, through ``/proc/PID/root`` (its
volumes, binds and tmpfs mounts included, as ``docker cp`` shows them); a stopped one through
its storage's mount, where a volume is not mounted: a path inside one is refused then rather
than read from (or written under) the empty mount point. Export always reads the storage's
mount: the image's layers and the container's changes, no volumes, as docker exports.

Tars are written and read by a thread, piece by piece, through the channel's byte stream
(bounded window): nothing is spooled or held whole. Everything the walk opens goes through
``inroot``, so nothing outside the container's root is read or written.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, cast

import structlog

import channels
from protocol.errors import (
    ChannelError,
    Conflict,
    Internal,
    InvalidArgument,
    ShoalError,
    Unsupported,
)
from protocol.messages import (
    ContainerArchive,
    ContainerPathStat,
    ExportContainer,
    GetContainerArchive,
    Message,
    Ok,
    PathStat,
    PutContainerArchive,
    StatContainerPath,
)
from worker.engine.bundle import resolve_user
from worker.engine.engine import Engine
from worker.engine.records import EngineContainer
from worker.files.extract import Extraction
from worker.files.inroot import ContainerPath, lstat_at, parse, resolve
from worker.files.stream_writer import buffered
from worker.files.tarwrite import KERNEL_VIEWS, write_path, write_root
from worker.images.stream_file import StreamFile
from worker.images.tarsafety import LayerLimits

log = structlog.get_logger("shoal.worker.files")

COPY_IDLE_TIMEOUT = 60.0  # a client that sends or takes nothing for this long ends its copy
# Copies run on threads of their own, at most this many at once (more wait for one): a client
# that reads slowly holds one of them, never a thread the rest of the worker needs.
MAX_COPY_THREADS = 8
COPY_READ_BYTES = 1 << 16
# What one copy into a container may hold: layer limits (no devices, bounded entries and
# sizes), so a client cannot make the daemon write without end.
COPY_LIMITS = LayerLimits()


class ContainerFiles:
    """Answers the file verbs for the containers of one engine."""

    def __init__(self, engine: Engine, limits: LayerLimits = COPY_LIMITS,
                 idle_timeout: float = COPY_IDLE_TIMEOUT) -> None:
        self.engine = engine
        self.limits = limits
        self.idle_timeout = idle_timeout
        self._threads = ThreadPoolExecutor(MAX_COPY_THREADS, thread_name_prefix="copy")

    async def handle(self, message: Message) -> Message | None:
        match message:
            case StatContainerPath(id=ref, path=path):
                record = self.engine.find(ref)
                where = _readable(path)
                root = await self._root(record, where, live=True)
                return ContainerPathStat(stat=await asyncio.to_thread(_stat, root, where))
            case GetContainerArchive(id=ref, path=path):
                record = self.engine.find(ref)
                where = _readable(path)
                root = await self._root(record, where, live=True)
                found = await asyncio.to_thread(_stat, root, where)
                await self._send_tar(message.reply, found,
                                     lambda out: _with_root(root, write_path, where, out))
                return None
            case ExportContainer(id=ref):
                record = self.engine.find(ref)
                root = await self._root(record, parse("/"), live=False)
                found = await asyncio.to_thread(_stat, root, parse("/"))
                await self._send_tar(message.reply, found,
                                     lambda out: _with_root(root, _export, out))
                return None
            case PutContainerArchive():
                await self._put(message)
                return Ok()
        raise Unsupported(f"the file service does not serve {type(message).__name__}")

    async def _root(self, record: EngineContainer, where: ContainerPath, *, live: bool) -> str:
        """Where this process reaches the container's root for ``where``."""
        pid = record.state.pid
        if live and record.state.status in ("running", "paused") and pid > 0:
            return f"/proc/{pid}/root"
        rootfs = await self.engine.driver.rootfs(record)
        if rootfs is None:
            raise Unsupported(f"the {self.engine.driver.name} driver runs host processes: its "
                              "containers have no file system of their own to copy")
        if live:
            for mount in record.spec.mounts:
                target = parse(mount.target).path
                if where.path == target or where.path.startswith(target.rstrip("/") + "/"):
                    raise Conflict(f"{where.path} is in the container's {mount.type} mount at "
                                   f"{target}, which is mounted only while the container "
                                   "runs: start it to copy there",
                                   details={"path": where.path})
        return rootfs

    async def _send_tar(self, reply_ref: object, found: PathStat,
                        write: Callable[[BinaryIO], None]) -> None:
        reply = reply_ref
        assert isinstance(reply, channels.Sender)
        writer, reader = channels.byte_pipe()
        await reply.send(ContainerArchive(stat=found, data=reader), last=True)
        loop = asyncio.get_running_loop()

        def run() -> None:
            out = buffered(writer, loop, idle_timeout=self.idle_timeout)
            write(out)
            out.flush()

        writing = loop.run_in_executor(self._threads, run)
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            # The thread's next write fails, which ends it.
            writer.abort(ChannelError("the worker stopped the copy"))
            await asyncio.gather(writing, return_exceptions=True)
            raise
        except ChannelError:
            return  # the client went away: nothing to tell it
        except ShoalError as exc:
            writer.abort(exc)
            return
        except OSError as exc:
            log.warning("a container copy failed midway", error=str(exc))
            writer.abort(Internal(f"the copy failed: {exc.strerror or exc}"))
            return
        except Exception as exc:  # the reply is gone: the stream is the one place to say it
            log.exception("a container copy failed midway")
            writer.abort(Internal(f"the copy failed: {type(exc).__name__}: {exc}"))
            return
        writer.close()

    async def _put(self, request: PutContainerArchive) -> None:
        data = request.data
        if not isinstance(data, channels.ByteReader):
            raise InvalidArgument("container.archive.put needs a byte stream with the tar")
        try:
            record = self.engine.find(request.id)
            where = _readable(request.path)
            root = await self._root(record, where, live=True)
            owner = None
            if request.copy_uid_gid and record.user():
                uid, gid, _ = await asyncio.to_thread(resolve_user, record.user(), Path(root))
                owner = (uid, gid)
            root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except BaseException:
            data.close()
            raise
        try:
            extraction = Extraction(root_fd, where.path,
                                    no_overwrite_dir_non_dir=request.no_overwrite_dir_non_dir,
                                    owner=owner, limits=self.limits)
            loop = asyncio.get_running_loop()
            stream = StreamFile(data, loop, idle_timeout=self.idle_timeout,
                                what="the copied archive", limit=self.limits.max_stream_bytes)
            reader = cast(BinaryIO, io.BufferedReader(stream, COPY_READ_BYTES))
            extracting = loop.run_in_executor(self._threads, extraction.run, reader)
            try:
                count = await asyncio.shield(extracting)
            except asyncio.CancelledError:
                data.close()  # the thread's next read fails
                await asyncio.gather(extracting, return_exceptions=True)
                raise
            except OSError as exc:
                raise Internal(f"copying into {where.path} failed: "
                               f"{exc.strerror or exc}") from exc
            log.info("copied into a container", container_id=record.id, path=where.path,
                     entries=count)
        finally:
            data.close()
            os.close(root_fd)


def _readable(path: str) -> ContainerPath:
    where = parse(path)
    for view in KERNEL_VIEWS:
        if where.path.startswith(view + "/"):
            raise InvalidArgument(f"{where.path} is in the kernel's {view} view, not a file of "
                                  "the container", details={"path": where.path})
    return where


def _with_root(root: str, write: Callable[..., None], *args: object) -> None:
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        write(root_fd, *args)
    finally:
        os.close(root_fd)


def _export(root_fd: int, out: BinaryIO) -> None:
    write_root(root_fd, out)


def _stat(root: str, where: ContainerPath) -> PathStat:
    """The path's stat as docker's ``X-Docker-Container-Path-Stat`` tells it."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Conflict("the container stopped meanwhile: try again") from None
    try:
        fd, _, found = lstat_at(root_fd, where)
        os.close(fd)
        target = ""
        if stat.S_ISLNK(found.st_mode):
            with contextlib.suppress(OSError, ShoalError):
                target = resolve(root_fd, where.path)
        name = "." if where.current_dir else (where.base or "/")
        return PathStat(name=name, size=max(found.st_size, 0), mode=found.st_mode,
                        mtime=max(found.st_mtime, 0.0), link_target=target)
    finally:
        os.close(root_fd)
