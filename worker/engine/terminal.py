"""Ptys and non-blocking descriptors as the worker drives them (ptys: Unix only): waiting on a
descriptor, a terminal's window size, and the copy of a container's terminal output into its
raw stdout file, from where it reaches the json-file log."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import struct


async def wait_ready(fd: int, *, write: bool, wake: asyncio.Event | None = None) -> None:
    """Until non-blocking ``fd`` is readable (writable), or ``wake`` is set."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def fire() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, fire)
    waker = asyncio.ensure_future(wake.wait()) if wake is not None else None
    if waker is not None:
        waker.add_done_callback(lambda _t: fire())
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)
        if waker is not None:
            waker.cancel()


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a pty master: the processes on the terminal get SIGWINCH."""
    import fcntl  # Unix only, like ptys; the module is imported on every host
    import termios

    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


async def copy_terminal(master: int, sink: int) -> None:
    """Copy the terminal's output into ``sink`` until EIO (every holder of the slave side has
    closed it: the container has ended); both descriptors are ours and closed at the end."""
    os.set_blocking(master, False)
    try:
        while True:
            try:
                data = os.read(master, 1 << 16)
            except BlockingIOError:
                await wait_ready(master, write=False)
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            view = memoryview(data)
            while view:  # a regular file opened O_APPEND: writes do not block for long
                view = view[os.write(sink, view):]
    finally:
        os.close(master)
        os.close(sink)
