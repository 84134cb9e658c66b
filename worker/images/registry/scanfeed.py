"""A layer judged while it downloads: the bytes the puller writes to its partial file are also
handed to a scanner thread (``scan_layer``, what an import does), through a bounded queue.

The scanner hashes what it reads (the blob digest), decompresses, hashes again (the diff id)
and judges every tar entry; so the download itself need not hash, and the layer is done soon
after its last byte arrives instead of being read again from disk afterwards. A full queue
holds the writer back (a scanner slower than the network paces the download); a scanner that
refuses the layer fails the writer's next ``put`` with its refusal.
"""

from __future__ import annotations

import io
import queue
import threading

from worker.images.tarsafety import LayerLimits
from worker.images.unpack import LayerStats
from worker.images.verify import scan_layer

QUEUED_CHUNKS = 16  # of up to 256 KiB: at most 4 MiB waiting per layer


class FeedAborted(Exception):
    """The writer gave up on this stream (the blob starts again, or the pull failed)."""


class _Feed(io.RawIOBase):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(QUEUED_CHUNKS)
        self.pending = b""
        self.ended = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        """Have ``pending`` hold unread bytes; False at the end of the stream."""
        while not self.pending:
            if self.ended:
                return False
            item = self.chunks.get()
            if item is None:
                self.ended = True
                return False
            if isinstance(item, BaseException):
                self.ended = True
                raise item
            self.pending = item
        return True

    def read(self, size: int = -1) -> bytes:
        """The next bytes as they were put (a whole chunk when it fits): no copy."""
        if size < 0:
            return b"".join(iter(lambda: self.read(1 << 30), b""))
        if not self._next():
            return b""
        if size >= len(self.pending):
            data, self.pending = self.pending, b""
        else:
            data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class LayerScan:
    """A scanner thread for one layer; ``put`` its bytes in order, then ``finish``."""

    def __init__(self, limits: LayerLimits, diff_id: str, name: str) -> None:
        self.feed = _Feed()
        self.result: LayerStats | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(limits, diff_id),
                                       name=f"scan-{name}", daemon=True)
        self.thread.start()

    def _run(self, limits: LayerLimits, diff_id: str) -> None:
        try:
            self.result = scan_layer(self.feed, limits=limits, diff_id=diff_id)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the writer: a refusal, or the abort itself
            self.error = exc
        finally:
            self.done.set()
            # Unblock a writer waiting for room: nothing reads the queue any more.
            while True:
                try:
                    self.feed.chunks.get_nowait()
                except queue.Empty:
                    break

    def put(self, data: bytes) -> None:
        """Hand ``data`` on (blocks while the queue is full); the scanner's refusal, if it
        has refused, instead."""
        while not self.done.is_set():
            try:
                self.feed.chunks.put(data, timeout=0.5)
                return
            except queue.Full:
                continue
        self._raise()

    def finish(self) -> LayerStats:
        """End the stream; the scanner's stats (its ``blob_digest`` is the digest of every
        byte put) or its refusal."""
        self._end(None)
        self.done.wait()
        if self.result is None:
            self._raise()
        assert self.result is not None
        return self.result

    def abort(self) -> None:
        self._end(FeedAborted())
        self.done.wait()

    def _end(self, item: BaseException | None) -> None:
        while not self.done.is_set():
            try:
                self.feed.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        error = self.error
        if error is None:
            raise FeedAborted("the layer scan ended without a result")
        raise error
