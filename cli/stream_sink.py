"""A file-like object that writes onto a channel's byte stream in batches: what ``tarfile``
writes a build context or an image layout into. Its own module so that ``shoal build`` need
not import the image verbs (``cli.images`` and the registry client's CLI behind it)."""

from __future__ import annotations

from channels._blocking import ByteSource

READ_CHUNK = 1024 * 1024


class StreamSink:
    """Bytes written go out on ``source`` in batches, each when the worker has room for it
    (so the writer is paced by the worker)."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= READ_CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            self.source.write(data)
