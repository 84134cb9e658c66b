"""Scan an image's layers without extracting them, so an import can refuse a hostile image
before anything uses it.

Each entry is judged by the same ``tarsafety.LayerChecker`` that unpacking uses (traversal,
absolute paths, writes through links, hardlink escapes, devices, sizes), the stream by the same
expansion bound, and the blob digest and the diff id are checked, but nothing is written: the
layer is only read and hashed. The sum of the layers' unpacked sizes is bounded per image.
"""

from __future__ import annotations

import io
from typing import BinaryIO, cast

from worker.images.errors import LayerRejected
from worker.images.gzipscan import GzipLayerScan, ReadRaw
from worker.images.layers import LayerRef
from worker.images.store import Image, ImageStore
from worker.images.tarsafety import Header, LayerChecker, LayerLimits
from worker.images.unpack import (
    CHUNK,
    LayerStats,
    LayerStream,
    compression_of,
    decompress_errors,
)


def scan_layer(blob: BinaryIO, *, limits: LayerLimits, blob_digest: str | None = None,
               diff_id: str | None = None) -> LayerStats:
    """Judge every entry of the layer ``blob`` and check its digests; raises ``LayerRejected``
    naming the entry and the reason."""
    read_raw: ReadRaw = blob.read
    first = read_raw(CHUNK)
    while 0 < len(first) < 4 and (more := read_raw(CHUNK)):  # enough to tell the compression
        first += more
    stream: GzipLayerScan | LayerStream
    if compression_of(first[:4]) == "gzip":
        stream = GzipLayerScan(read_raw, first, limits)
    else:
        stream = LayerStream(cast(BinaryIO, io.BufferedReader(_Replayed(first, read_raw))),
                             limits)
    checker = LayerChecker(limits)
    last = ""
    try:
        with stream.tar() as archive:
            for member in archive:
                last = member.name
                checker.check(Header.of(member))
        stream.finish()
    except LayerRejected:
        raise
    except decompress_errors() as exc:
        raise stream.corrupt(exc, last) from exc
    return stream.stats(checker, blob_digest, diff_id)


class _Replayed(io.RawIOBase):
    """A blob's first bytes, already read to learn its compression, then the rest of it."""

    def __init__(self, first: bytes, read_raw: ReadRaw) -> None:
        super().__init__()
        self.pending = first
        self.read_raw = read_raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.pending or self.read_raw(len(buffer))
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        self.pending = data[n:]
        return n


def verify_layer(store: ImageStore, layer: LayerRef) -> LayerStats:
    with store.blobs.open(layer.blob) as blob:
        return scan_layer(blob, limits=store.limits, blob_digest=layer.blob,
                          diff_id=layer.diff_id)


def image_total(total: int, layer: LayerStats, limits: LayerLimits) -> int:
    """``total`` (the unpacked bytes of an image's layers so far) with ``layer`` added;
    ``LayerRejected`` once it passes ``limits.max_image_bytes``."""
    total += layer.content_bytes
    if total > limits.max_image_bytes:
        raise LayerRejected(f"image contents exceed {limits.max_image_bytes} bytes unpacked",
                            reason="image too large")
    return total


def verify_image(store: ImageStore, image: Image) -> None:
    """Scan every layer of ``image`` and bound the sum of their unpacked sizes; the first
    refusal names the layer (and the entry)."""
    total = 0
    for number, layer in enumerate(image.layers, 1):
        try:
            total = image_total(total, verify_layer(store, layer), store.limits)
        except LayerRejected as exc:
            details = {**exc.details, "layer": layer.blob, "image": image.id}
            raise LayerRejected(f"layer {number} of {len(image.layers)} ({layer.blob[:19]}): "
                                f"{exc.message}", details=details) from exc
