"""The local side of an interactive session (``exec -i -t``, ``run -i -t``): raw mode on the
user's terminal, its window size sent as TerminalSize (now and at each SIGWINCH), our stdin
copied to the remote stream, the remote output copied to our stdout and stderr."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Iterator

import click

import channels
from protocol.errors import ChannelError
from protocol.messages import TerminalSize
from protocol.refs import ByteReaderRef, SenderRef


def check_tty(interactive: bool, use_tty: bool) -> None:
    """Docker's rule: ``-i -t`` needs a terminal on stdin (``-i`` alone works with pipes)."""
    if interactive and use_tty and not os.isatty(sys.stdin.fileno()):
        raise click.ClickException("the input device is not a TTY")


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Stdin's terminal in raw mode (keys go to the remote as typed), restored on any exit."""
    fd = sys.stdin.fileno()
    if not enabled or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # now, keeping what was typed ahead
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def window_size() -> TerminalSize | None:
    for stream in (sys.stdout, sys.stdin):
        with contextlib.suppress(OSError, ValueError):
            size = os.get_terminal_size(stream.fileno())
            if size.lines > 0 and size.columns > 0:
                return TerminalSize(rows=size.lines, cols=size.columns)
    return None


async def send_stdin(writer: channels.ByteWriter) -> None:
    """Copy our stdin to ``writer`` until it ends, then close the stream. Waits for input with
    the event loop (the descriptor stays blocking: it is shared with the user's shell)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    try:
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            data = os.read(fd, 1 << 16)
            if not data:
                break
            await writer.write(data)
    except ChannelError:
        return
    writer.close()


async def send_resizes(sender: channels.Sender) -> None:
    """The window size now and after every SIGWINCH, until cancelled."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    changed.set()
    loop.add_signal_handler(signal.SIGWINCH, changed.set)
    try:
        while True:
            await changed.wait()
            changed.clear()
            size = window_size()
            if size is not None:
                await sender.send(size)
    except ChannelError:
        return
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)


async def copy_output(reader: ByteReaderRef | None, out: int) -> None:
    """Write a remote stream to descriptor ``out`` as it comes."""
    if not isinstance(reader, channels.ByteReader):
        return
    async for chunk in reader:
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view):]


async def stream(*, stdout: ByteReaderRef, stderr: ByteReaderRef | None,
                 stdin: channels.ByteWriter | None, resize: SenderRef | None) -> None:
    """Run the session's copies until the remote output has ended."""
    helpers = []
    if stdin is not None:
        helpers.append(asyncio.ensure_future(send_stdin(stdin)))
    if isinstance(resize, channels.Sender):
        helpers.append(asyncio.ensure_future(send_resizes(resize)))
    try:
        await asyncio.gather(copy_output(stdout, sys.stdout.fileno()),
                             copy_output(stderr, sys.stderr.fileno()))
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if stdin is not None:
            stdin.close()
