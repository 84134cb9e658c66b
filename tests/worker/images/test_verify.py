"""Scanning a layer without extracting it judges it exactly as unpacking does."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.image_layers import E, diff_id, gz, make_tar
from worker.images import LayerLimits, LayerRejected
from worker.images.digest import digest_bytes
from worker.images.unpack import Form, LayerStats, unpack_layer
from worker.images.verify import scan_layer

LIMITS = LayerLimits(max_file_bytes=1000, max_total_bytes=1500)
LAYERS = {
    "fine": [E("bin", "dir"), E("bin/sh", data=b"#!"), E("bin/ls", "symlink", link="sh"),
             E("bin/ln", "hardlink", link="bin/sh"), E("etc/.wh.gone"), E("var/.wh..wh..opq")],
    "traversal": [E("a/../../evil", data=b"x")],
    "absolute": [E("ok", data=b"x"), E("/abs", data=b"x")],
    "through a symlink": [E("l", "symlink", link="/"), E("l/x", "dir")],
    "hardlink to a link": [E("l", "symlink", link="/etc/shadow"), E("h", "hardlink", link="l")],
    "device": [E("sda", "block", dev=(8, 0))],
    "too big": [E("a", data=b"x" * 900), E("b", data=b"x" * 900)],
}


def verdict(run: Callable[[], LayerStats]) -> tuple[str, str] | LayerStats:
    try:
        return run()
    except LayerRejected as exc:
        return exc.entry, exc.reason


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_scan_agrees_with_unpack(tmp_path: Path, name: str, compressed: bool) -> None:
    tar = make_tar(LAYERS[name])
    blob = gz(tar) if compressed else tar
    digests = {"blob_digest": digest_bytes(blob), "diff_id": diff_id(tar)}
    scanned = verdict(lambda: scan_layer(io.BytesIO(blob), limits=LIMITS, **digests))
    unpacked = verdict(lambda: unpack_layer(io.BytesIO(blob), str(tmp_path), form=Form.OVERLAY,
                                            limits=LIMITS, **digests))
    assert scanned == unpacked
    assert isinstance(scanned, LayerStats) == (name == "fine")


def test_scan_checks_digests() -> None:
    tar = make_tar(LAYERS["fine"])
    with pytest.raises(LayerRejected, match="diff id is"):
        scan_layer(io.BytesIO(gz(tar)), limits=LIMITS, diff_id=diff_id(tar + b"\0"))
    with pytest.raises(LayerRejected, match="blob digest is"):
        scan_layer(io.BytesIO(gz(tar)), limits=LIMITS, blob_digest=digest_bytes(tar))
    with pytest.raises(LayerRejected, match="corrupt or truncated"):
        scan_layer(io.BytesIO(gz(tar)[:-40]), limits=LIMITS)
