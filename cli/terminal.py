"""The local side of an interactive session (``exec -i -t``, ``run -i -t``): raw mode on the
user's terminal, its window size sent as TerminalSize (now and at each SIGWINCH), our stdin
copied to the remote stream, the remote output copied to our stdout and stderr."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from channels._blocking import BlockingByteReader, BlockingSender, BlockingSession, ByteSource
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
    import termios  # only a terminal's session (-t) needs them
    import tty

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


class _Copies:
    """What ``stream`` moves while it waits: remote output to our descriptors, our stdin and
    window size to the remote."""

    def __init__(self, session: BlockingSession, outputs: list[tuple[BlockingByteReader, int]],
                 stdin: ByteSource | None, resize: BlockingSender | None) -> None:
        self.session = session
        self.outputs = outputs
        self.stdin = stdin
        self.resize = resize
        self.stdin_fd = sys.stdin.fileno() if stdin is not None else -1
        self.wakeup_fd = -1

    def output_done(self) -> bool:
        """Write whatever arrived; True once every output stream has ended."""
        done = True
        for reader, fd in self.outputs:
            while reader.ready():
                chunk = reader.read()
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            done = done and reader.exhausted()
        return done

    def on_readable(self, fds: list[int]) -> None:
        if self.stdin_fd in fds:
            self._copy_stdin()
        if self.wakeup_fd in fds:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wakeup_fd, 512)
            self.send_size()

    def _copy_stdin(self) -> None:
        assert self.stdin is not None
        data = os.read(self.stdin_fd, 1 << 16)
        try:
            if data:
                self.stdin.write(data)
                return
            self.stdin.close()
        except ChannelError:
            pass  # the remote closed its input: nothing more to send
        self.session.unwatch(self.stdin_fd)
        self.stdin_fd = -1

    def send_size(self) -> None:
        size = window_size()
        if self.resize is not None and size is not None:
            with contextlib.suppress(ChannelError):
                self.resize.send(size)


def stream(session: BlockingSession, *, stdout: ByteReaderRef | None,
           stderr: ByteReaderRef | None, stdin: ByteSource | None,
           resize: SenderRef | None) -> None:
    """Copy the remote output to our stdout and stderr until it has ended; meanwhile our stdin
    goes to ``stdin`` and the window size (now and at each SIGWINCH) to ``resize``."""
    outputs = [(reader, fd) for reader, fd in ((stdout, sys.stdout.fileno()),
                                               (stderr, sys.stderr.fileno()))
               if isinstance(reader, BlockingByteReader)]
    copies = _Copies(session, outputs, stdin,
                     resize if isinstance(resize, BlockingSender) else None)
    previous_handler: Any = None
    previous_wakeup = -1
    wakeup_write = -1
    if copies.stdin_fd >= 0:
        session.watch(copies.stdin_fd)
    if copies.resize is not None:
        import signal  # only a terminal's session (-t) has a window size to follow

        copies.wakeup_fd, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous_handler = signal.signal(signal.SIGWINCH, lambda signum, frame: None)
        previous_wakeup = signal.set_wakeup_fd(wakeup_write)
        session.watch(copies.wakeup_fd)
        copies.send_size()
    try:
        session.wait_for(copies.output_done, on_readable=copies.on_readable)
    finally:
        if copies.stdin_fd >= 0:
            session.unwatch(copies.stdin_fd)
        if stdin is not None:
            stdin.close()
        if copies.wakeup_fd >= 0:  # signal imported above, with the handler set
            session.unwatch(copies.wakeup_fd)
            signal.set_wakeup_fd(previous_wakeup)
            signal.signal(signal.SIGWINCH, previous_handler)
            os.close(copies.wakeup_fd)
            os.close(wakeup_write)
