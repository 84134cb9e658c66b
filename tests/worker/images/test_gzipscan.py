"""The gzip scan path (``gzipscan``, forward-only reads with contents skipped) judges a layer as
the general reader stack does, however its bytes are cut into members and chunks."""

from __future__ import annotations

import io
import itertools
import os
import tarfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.image_layers import E, diff_id, make_tar
from worker.images import LayerLimits, LayerRejected
from worker.images.digest import digest_bytes
from worker.images.registry.scanfeed import LayerScan
from worker.images.unpack import LayerStats
from worker.images.verify import scan_layer

LIMITS = LayerLimits()

entry_sizes = st.lists(st.integers(0, 3 << 20), min_size=1, max_size=4)


def _layer(sizes: list[int], long_names: bool) -> bytes:
    stem = "d/" + "n" * 150 if long_names else "f"  # over 100 bytes: a pax header
    seed = os.urandom(4096)
    return make_tar([E(f"{stem}{number}", data=(seed * (size // 4096 + 1))[:size])
                     for number, size in enumerate(sizes)])


def _members(data: bytes, cuts: list[int], padding: int) -> bytes:
    """``data`` gzipped as several members, cut at ``cuts``, zeros after each member."""
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    out = b""
    for start, end in itertools.pairwise(bounds):
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        out += packer.compress(data[start:end]) + packer.flush() + bytes(padding)
    return out


def _feed(blob: bytes, cuts: list[int], limits: LayerLimits = LIMITS,
          wanted: str = "") -> LayerStats:
    """``blob`` through a pull's scanner, handed over in pieces cut at ``cuts``."""
    scan = LayerScan(limits, wanted, "test")
    bounds = sorted({0, len(blob), *(c % (len(blob) + 1) for c in cuts)})
    try:
        for start, end in itertools.pairwise(bounds):
            scan.put(blob[start:end])
    except BaseException:
        scan.abort()
        raise
    return scan.finish()


@settings(max_examples=25, deadline=None)
@given(sizes=entry_sizes, long_names=st.booleans(),
       member_cuts=st.lists(st.integers(0, 1 << 24), max_size=3), padding=st.integers(0, 600),
       feed_cuts=st.lists(st.integers(0, 1 << 24), max_size=12))
def test_stats_match_the_layer_however_it_is_cut(sizes: list[int], long_names: bool,
                                                 member_cuts: list[int], padding: int,
                                                 feed_cuts: list[int]) -> None:
    tar = _layer(sizes, long_names)
    blob = _members(tar, member_cuts, padding)
    expected = LayerStats(digest_bytes(blob), diff_id(tar), len(sizes), sum(sizes))
    assert scan_layer(io.BytesIO(blob), limits=LIMITS, blob_digest=digest_bytes(blob),
                      diff_id=diff_id(tar)) == expected
    assert _feed(blob, feed_cuts, wanted=diff_id(tar)) == expected
    assert scan_layer(io.BytesIO(tar), limits=LIMITS) == \
        LayerStats(digest_bytes(tar), diff_id(tar), len(sizes), sum(sizes))


@pytest.mark.parametrize("keep", [10, 600, 0.5, -8, -1])
def test_a_truncated_layer_is_refused(keep: float) -> None:
    tar = _layer([1 << 20, 5000], long_names=True)
    blob = _members(tar, [], 0)
    cut = int(len(blob) * keep) if isinstance(keep, float) else keep
    with pytest.raises(LayerRejected, match=r"corrupt or truncated|diff id is"):
        scan_layer(io.BytesIO(blob[:cut]), limits=LIMITS, diff_id=diff_id(tar))
    with pytest.raises(LayerRejected, match=r"corrupt or truncated|diff id is"):
        _feed(blob[:cut], [7, 100_000], wanted=diff_id(tar))


def test_a_tar_cut_short_inside_a_file_is_refused_though_its_gzip_is_whole() -> None:
    tar = _layer([1 << 20], long_names=False)
    short = tar[:len(tar) // 2]
    with pytest.raises(LayerRejected, match="corrupt or truncated") as caught:
        scan_layer(io.BytesIO(_members(short, [], 0)), limits=LIMITS)
    assert isinstance(caught.value.__cause__, tarfile.ReadError)


def test_garbage_after_the_stream_is_refused() -> None:
    tar = _layer([1000], long_names=False)
    with pytest.raises(LayerRejected, match="corrupt or truncated"):
        scan_layer(io.BytesIO(_members(tar, [], 0) + b"garbage"), limits=LIMITS)


def test_a_bomb_is_refused_while_it_inflates() -> None:
    limits = LayerLimits(expansion_floor=1 << 20, max_expansion=10)
    blob = _members(make_tar([E("zeros", data=bytes(8 << 20))]), [], 0)
    with pytest.raises(LayerRejected, match="decompression bomb"):
        scan_layer(io.BytesIO(blob), limits=limits)
    with pytest.raises(LayerRejected, match="decompression bomb"):
        _feed(blob, [3, 4000], limits)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_other_layers_take_the_general_path_with_the_first_bytes_replayed(
        compression: str) -> None:
    import zstandard

    tar = _layer([70_000, 3], long_names=True)
    blob = tar if compression == "none" else zstandard.ZstdCompressor().compress(tar)
    expected = LayerStats(digest_bytes(blob), diff_id(tar), 2, 70_003)
    assert scan_layer(io.BytesIO(blob), limits=LIMITS, blob_digest=digest_bytes(blob),
                      diff_id=diff_id(tar)) == expected
    assert _feed(blob, [1, 2, 5000], wanted=diff_id(tar)) == expected  # a 1-byte first chunk
