"""A gzip layer read once to be judged (an import's or a pull's scan), copying as little as
Python allows.

Judging a layer needs its tar headers, not its file contents: those need only be inflated and
hashed (the diff id). ``tarfile``'s stream mode reads every byte through its own buffers, and
the general reader stack under it (``unpack.LayerStream``: hashing reader, buffered reader,
gzip stream, buffered reader, expansion guard) copied each byte five times more; that made a
pull's scan cost more CPU than the download itself. ``InflatedTar`` is what ``tarfile`` reads
in its seekable mode, which only ever seeks forward over an archive read in order: it hands
over the header blocks, and a seek over a file's contents just moves past inflated output that
was hashed where it lay. So each byte is hashed once compressed, inflated once and hashed once
inflated, in calls (hashlib's, ISA-L's) that release the GIL; other layers' scans and the
download run beside them.

The judgement is ``unpack.LayerStream``'s: the same expansion bound and size bound, the same
refusals for a corrupt or truncated stream, padding between and after gzip members allowed.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from typing import cast

from isal import isal_zlib

from worker.images.digest import ALGORITHM
from worker.images.tarsafety import LayerChecker, LayerLimits
from worker.images.unpack import CHUNK, LayerStats, reject_stream

ReadRaw = Callable[[int], bytes]  # the blob's next bytes (up to n; b"" at its end)


class InflatedTar(io.RawIOBase):
    """The tar stream inside a gzip blob, readable and seekable forward only; ``first`` is the
    blob's first bytes, already read from ``read_raw``."""

    def __init__(self, read_raw: ReadRaw, first: bytes, limits: LayerLimits) -> None:
        super().__init__()
        self.read_raw = read_raw
        self.limits = limits
        self.blob_hasher = hashlib.sha256(first)
        self.blob_count = len(first)
        self.tar_hasher = hashlib.sha256()
        self.tar_count = 0
        self.inflate = isal_zlib.decompressobj(wbits=31)
        self.in_member = False  # input fed to ``inflate`` and its member not ended yet
        self.input = first  # compressed bytes read and not yet given to ``inflate``
        self.output = b""  # the last inflated piece; it starts at tar offset ``output_at``
        self.output_at = 0
        self.position = 0
        self.ended = False

    # -- what tarfile uses -------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self.position + offset \
            if whence == os.SEEK_CUR else -1
        if target < self.position:
            raise tarfile.ReadError("a layer being scanned is read forward only")
        # Past the end is allowed, as in a file: the next read then finds nothing.
        while target > self.output_at + len(self.output) and self._inflate_more():
            pass
        self.position = target
        return target

    def read(self, size: int = -1) -> bytes:
        pieces: list[bytes] = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            start = self.position - self.output_at
            if start >= len(self.output):
                if not self._inflate_more():
                    break
                continue
            end = len(self.output) if wanted is None else min(len(self.output),
                                                               start + wanted)
            pieces.append(self.output[start:end])
            self.position += end - start
            if wanted is not None:
                wanted -= end - start
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    # -- the stream --------------------------------------------------------------------

    def _inflate_more(self) -> bool:
        """Replace ``output`` by the next inflated piece (hashed, counted, bounded); False at
        the end of the blob. Skipped output is thereby dropped without being copied."""
        while not self.ended:
            if not self.input:
                self.input = self.read_raw(CHUNK)
                if not self.input:
                    if self.in_member:
                        raise EOFError("compressed file ended before the end-of-stream "
                                       "marker was reached")
                    self.ended = True
                    break
                self.blob_hasher.update(self.input)
                self.blob_count += len(self.input)
            if not self.in_member:
                self.input = self.input.lstrip(b"\0")  # padding between or after members
                if not self.input:
                    continue
                self.in_member = True
            piece = self.inflate.decompress(self.input, CHUNK)
            if self.inflate.eof:  # a member ended; what follows may be another
                self.input = self.inflate.unused_data
                self.inflate = isal_zlib.decompressobj(wbits=31)
                self.in_member = False
            else:
                self.input = self.inflate.unconsumed_tail
            if piece:
                self._take(piece)
                return True
        return False

    def _take(self, piece: bytes) -> None:
        self.output_at += len(self.output)
        self.output = piece
        self.tar_count += len(piece)
        limit = self.limits.max_stream_bytes
        if self.tar_count > limit:
            raise reject_stream(f"uncompressed layer is larger than {limit} bytes")
        if self.tar_count > self.limits.expansion_floor and \
                self.tar_count > self.limits.max_expansion * max(1, self.blob_count):
            raise reject_stream(
                f"unpacks to more than {self.limits.max_expansion} times its stored size "
                f"({self.tar_count} bytes from {self.blob_count}): a decompression bomb?")
        self.tar_hasher.update(piece)


class GzipLayerScan:
    """``unpack.LayerStream``'s face (``tar``, ``finish``, ``corrupt``, ``stats``) over an
    ``InflatedTar``."""

    kind = "gzip"

    def __init__(self, read_raw: ReadRaw, first: bytes, limits: LayerLimits) -> None:
        self.inner = InflatedTar(read_raw, first, limits)

    def tar(self) -> tarfile.TarFile:
        return tarfile.TarFile(fileobj=cast(io.BufferedReader, self.inner), mode="r",
                               errorlevel=2)

    def finish(self) -> None:
        """Inflate and hash what follows the tar's end (its padding belongs to the diff id)."""
        while self.inner._inflate_more():
            pass

    def corrupt(self, exc: BaseException, last: str) -> Exception:
        return reject_stream(f"corrupt or truncated layer ({self.kind}): {exc}", last)

    def stats(self, checker: LayerChecker, blob_digest: str | None,
              diff_id: str | None) -> LayerStats:
        outer = f"{ALGORITHM}:{self.inner.blob_hasher.hexdigest()}"
        inner = f"{ALGORITHM}:{self.inner.tar_hasher.hexdigest()}"
        if blob_digest is not None and outer != blob_digest:
            raise reject_stream(f"blob digest is {outer}, expected {blob_digest}")
        if diff_id is not None and inner != diff_id:
            raise reject_stream(f"diff id is {inner}, expected {diff_id}")
        return LayerStats(outer, inner, checker.entries, checker.total_bytes)
