"""Image limits: the expansion bound on a layer's stream, the bound on an image's unpacked
total, both judged at scan (import or fetch) and at unpack alike."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.helpers.image_layers import E, diff_id, gz, gzip_bomb, layout_from_tars, make_tar
from worker.images import ImageStore, LayerLimits, LayerRejected
from worker.images.importer import import_image
from worker.images.unpack import CHUNK, Form, unpack_layer
from worker.images.verify import scan_layer, verify_image

KiB = 1024


def test_a_bomb_is_refused_once_past_the_floor_by_scan_and_unpack(tmp_path: Path) -> None:
    limits = LayerLimits(expansion_floor=256 * KiB, max_expansion=100)
    bomb = gzip_bomb(files=10, file_size=1 << 20, chunk=64 * KiB)  # 10 MiB from ~10 KiB
    with pytest.raises(LayerRejected, match="more than 100 times its stored size"):
        scan_layer(io.BytesIO(bomb), limits=limits)
    with pytest.raises(LayerRejected, match="more than 100 times its stored size"):
        unpack_layer(io.BytesIO(bomb), str(tmp_path), form=Form.OVERLAY, limits=limits)
    # It stopped within one read of the floor, not at the end of the 10 MiB.
    written = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert written <= 256 * KiB + CHUNK


@pytest.mark.parametrize(("floor", "ratio", "refused"), [
    (256 * KiB, 100, True),     # the bomb's ratio (~1000) is over the bound
    (256 * KiB, 5000, False),   # a looser bound lets it through
    (32 << 20, 100, False),     # a layer that never unpacks past the floor is not judged
])
def test_the_bound_and_the_floor(floor: int, ratio: int, refused: bool) -> None:
    bomb = gzip_bomb(files=2, file_size=4 << 20, chunk=64 * KiB)
    limits = LayerLimits(expansion_floor=floor, max_expansion=ratio)
    if refused:
        with pytest.raises(LayerRejected, match="times its stored size"):
            scan_layer(io.BytesIO(bomb), limits=limits)
    else:
        assert scan_layer(io.BytesIO(bomb), limits=limits).content_bytes == 8 << 20


def test_ordinary_layers_pass_the_default_bound() -> None:
    """Incompressible data and plain (uncompressed) tars unpack to about their stored size."""
    limits = LayerLimits(expansion_floor=0)
    tar = make_tar([E("random", data=os.urandom(512 * KiB)), E("text", data=b"log line\n" * 4000)])
    for blob in (tar, gz(tar)):
        assert scan_layer(io.BytesIO(blob), limits=limits, diff_id=diff_id(tar)).entries == 2


def test_an_image_over_its_total_is_refused_though_each_layer_fits(tmp_path: Path) -> None:
    layers = [make_tar([E(f"file{n}", data=os.urandom(40 * KiB))]) for n in range(3)]
    layout = layout_from_tars(tmp_path / "layout", layers, "big:1")
    store = ImageStore(tmp_path / "store", limits=LayerLimits(max_image_bytes=100 * KiB,
                                                                max_total_bytes=50 * KiB))
    [image] = import_image(store, layout).images
    with pytest.raises(LayerRejected, match=r"layer 3 of 3.*image contents exceed") as refused:
        verify_image(store, image)
    assert refused.value.details["image"] == image.id
    roomy = ImageStore(tmp_path / "roomy", limits=LayerLimits(max_image_bytes=120 * KiB))
    [image] = import_image(roomy, layout).images
    verify_image(roomy, image)


@pytest.mark.parametrize("field", ["max_total_bytes", "max_expansion", "max_image_bytes"])
def test_limits_below_one_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LayerLimits(**{field: 0})  # type: ignore[arg-type]
