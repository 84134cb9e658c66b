"""A channels ``ByteReader`` read from a worker thread as a blocking binary file.

What a thread that wants a file (``tarfile``, ``BlobStore.put``) reads a stream through: each
``read`` that finds nothing buffered asks the event loop for the stream's next piece. A stream
that brings nothing for ``idle_timeout`` seconds fails the read with ``Timeout`` (a peer that is
alive but stuck must not hold the thread forever); more than ``limit`` bytes fail it with
``InvalidArgument``. Pieces are handed out by offset, never re-sliced, so small reads of a big
piece cost no copies of its rest.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import channels
from protocol.errors import InvalidArgument, Timeout


class StreamFile(io.RawIOBase):
    def __init__(self, reader: channels.ByteReader, loop: asyncio.AbstractEventLoop, *,
                 idle_timeout: float, what: str, limit: int | None = None,
                 on_data: Callable[[int], None] | None = None,
                 details: dict[str, str] | None = None) -> None:
        super().__init__()
        self._reader = reader
        self._loop = loop
        self._idle_timeout = idle_timeout
        self._what = what  # "blob sha256:…", "the build context": for errors
        self._limit = limit
        self._on_data = on_data
        self._details = details or {}
        self._piece = memoryview(b"")
        self._offset = 0
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._offset >= len(self._piece):
            future = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            self._piece = memoryview(future.result())
            self._offset = 0
        n = min(len(buffer), len(self._piece) - self._offset)
        buffer[:n] = self._piece[self._offset:self._offset + n]
        self._offset += n
        return n

    async def _next(self) -> bytes:
        try:
            data = await asyncio.wait_for(self._reader.read(), self._idle_timeout)
        except TimeoutError:
            raise Timeout(f"{self._what}: no data for {self._idle_timeout:g} s",
                          details=self._details) from None
        self.received += len(data)
        if self._limit is not None and self.received > self._limit:
            raise InvalidArgument(f"{self._what} is larger than the {self._limit}-byte limit",
                                  details={**self._details, "limit": str(self._limit)})
        if self._on_data is not None and data:
            self._on_data(len(data))
        return data
