"""Copying between a process's descriptors and channel streams: what exec and attach stream.

Descriptors are made non-blocking and waited on with the event loop (no threads). An output
copy ends at end-of-file, at EIO (a pty master once every holder of the slave has closed it),
or, for a pipe, once ``drained`` is set and nothing more is buffered: everything a process
wrote before it exited is already in the pipe, so a background child that still holds it
cannot keep the stream open.

Where the event loop cannot wait on a pipe (Windows: ``HOST.pollable_pipes`` is false), the
descriptors stay blocking and each read or write runs on a thread instead.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable

import channels
from protocol.errors import ChannelError
from protocol.messages import TerminalSize
from worker.engine.driver import ExecProcess
from worker.engine.terminal import wait_ready
from worker.hostos import HOST

CHUNK = 1 << 16


async def copy_out(fd: int, writer: channels.ByteWriter, *,
                   drained: asyncio.Event | None = None) -> None:
    """Copy ``fd`` to ``writer`` until the end (see the module's docstring), then close the
    writer. A writer whose reader went away ends the copy with ChannelError."""
    if not HOST.pollable_pipes:
        while data := await asyncio.to_thread(os.read, fd, CHUNK):
            await writer.write(data)
        writer.close()
        return
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            if drained is not None and drained.is_set():
                break
            await wait_ready(fd, write=False, wake=drained)
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:  # a pty whose slave side is closed
                break
            raise
        if not data:
            break
        await writer.write(data)
    writer.close()


async def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a non-blocking ``fd``, waiting while it is full (a blocking
    one where pipes cannot be polled, on a thread)."""
    view = memoryview(data)
    if not HOST.pollable_pipes:
        while view:
            view = view[await asyncio.to_thread(os.write, fd, view):]
        return
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await wait_ready(fd, write=True)


async def copy_in(reader: channels.ByteReader, fd: int, *,
                  at_end: Callable[[], None] | None = None) -> None:
    """Copy ``reader`` into ``fd`` until the stream ends, then call ``at_end`` (which closes a
    pipe, so the process reads EOF). A process that stopped reading (EPIPE, EIO) ends it."""
    if HOST.pollable_pipes:
        os.set_blocking(fd, False)
    try:
        async for chunk in reader:
            await write_all(fd, chunk)
    except (BrokenPipeError, ChannelError):
        return
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
        return
    finally:
        reader.close()
    if at_end is not None:
        at_end()


async def apply_resizes(receiver: channels.Receiver, process: ExecProcess) -> None:
    """Each TerminalSize on ``receiver`` resizes the process's pty, until the channel ends."""
    try:
        async for message in receiver:
            if isinstance(message, TerminalSize):
                process.resize(message.rows, message.cols)
    except ChannelError:
        return
