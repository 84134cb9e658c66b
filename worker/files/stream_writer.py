"""A channels ``ByteWriter`` written from a worker thread as a blocking binary file.

The inverse of ``worker.images.stream_file``: what a thread that writes a file (``tarfile``)
writes a stream through. Each write waits on the event loop until the stream has room, so the
bytes in flight stay bounded by the stream's window, whatever the size of the tar; a reader
that went away fails the write (ChannelError), which ends the thread's work, and so does one
that takes nothing for ``idle_timeout`` seconds (``Timeout``): a client alive but stuck must not
hold the thread forever.
"""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer

import channels
from protocol.errors import Timeout


class StreamWriterFile(io.RawIOBase):
    def __init__(self, writer: channels.ByteWriter, loop: asyncio.AbstractEventLoop, *,
                 idle_timeout: float) -> None:
        super().__init__()
        self._writer = writer
        self._loop = loop
        self._idle_timeout = idle_timeout
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer, /) -> int:
        piece = bytes(data)
        if piece:
            asyncio.run_coroutine_threadsafe(self._write(piece), self._loop).result()
            self.written += len(piece)
        return len(piece)


    async def _write(self, piece: bytes) -> None:
        try:
            await asyncio.wait_for(self._writer.write(piece), self._idle_timeout)
        except TimeoutError:
            raise Timeout(f"the reader took nothing for {self._idle_timeout:g} s") from None


def buffered(writer: channels.ByteWriter, loop: asyncio.AbstractEventLoop, *,
             idle_timeout: float, size: int = 1 << 16) -> io.BufferedWriter:
    """The stream as a buffered file: small tar headers go out in ``size``-byte pieces."""
    return io.BufferedWriter(StreamWriterFile(writer, loop, idle_timeout=idle_timeout), size)
