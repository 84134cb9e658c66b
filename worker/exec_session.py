"""One exec'd process's stdio over channels, from its start to its exit or its client's leaving.

The output streams (stdout, and stderr unless a pty merges them) are local byte pipes whose
readers travel to the client in ExecStarted; the client's stdin stream is copied in; with a
pty, TerminalSize messages on ``resize`` set its window size. Whatever happens, ``close`` kills
the process if it still runs, reaps it, stops every copy and closes every descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import channels
from protocol.errors import ChannelClosed, ChannelError
from worker.engine.driver import ExecProcess
from worker.streams import apply_resizes, copy_in, copy_out


class ExecSession:
    def __init__(self, process: ExecProcess, stdin: channels.ByteReader | None) -> None:
        self.process = process
        self._stdin = stdin
        self._writers: list[channels.ByteWriter] = []
        out_w, self.stdout = channels.byte_pipe()
        self._writers.append(out_w)
        self.stderr: channels.ByteReader | None = None
        self.resize: channels.Sender | None = None
        self._resizes: channels.Receiver | None = None
        if process.stderr is not None:
            err_w, self.stderr = channels.byte_pipe()
            self._writers.append(err_w)
        if process.tty:
            self.resize, self._resizes = channels.pipe()
        self._drained = asyncio.Event()
        self._outputs: list[asyncio.Task[None]] = []
        self._others: list[asyncio.Task[None]] = []

    async def run(self, reply: channels.Sender) -> int | None:
        """Copy until the process has exited and its output is through; its exit code, or None
        if the client went away first (the process is then killed)."""
        process = self.process
        drained = None if process.tty else self._drained  # a pty ends at EIO instead
        sources = [process.stdout] + ([process.stderr] if process.stderr is not None else [])
        self._outputs = [asyncio.ensure_future(copy_out(fd, writer, drained=drained))
                         for fd, writer in zip(sources, self._writers, strict=True)]
        if self._stdin is not None and process.stdin is not None:
            self._others.append(asyncio.ensure_future(
                copy_in(self._stdin, process.stdin, at_end=process.close_stdin)))
        if self._resizes is not None:
            self._others.append(asyncio.ensure_future(apply_resizes(self._resizes, process)))
        exited = asyncio.ensure_future(process.wait())
        gone = asyncio.ensure_future(reply.wait_closed())
        try:
            first: list[asyncio.Future[Any]] = [exited, gone]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                return None
            self._drained.set()
            outputs: asyncio.Future[list[None]] = asyncio.gather(*self._outputs)
            then: list[asyncio.Future[Any]] = [outputs, gone]
            await asyncio.wait(then, return_when=asyncio.FIRST_COMPLETED)
            if not outputs.done():
                outputs.cancel()
                return None
            if outputs.exception() is not None:
                raise ChannelClosed("the client stopped reading the output") \
                    from outputs.exception()
            return exited.result()
        finally:
            gone.cancel()
            if not exited.done():
                exited.cancel()

    async def close(self) -> None:
        """Kill the process if it still runs, reap it, stop the copies, close everything."""
        process = self.process
        process.kill()
        tasks = self._outputs + self._others
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ChannelError, OSError):
            await process.wait()
        process.close()
        for writer in self._writers:
            writer.close()
        if self._resizes is not None:
            self._resizes.close()
        if self._stdin is not None:
            self._stdin.close()
