"""A build keeps what it holds while it runs: an ``image prune -a`` in the middle of one (which
deletes its base image and clears the cache records) takes none of the layers it still needs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from worker.build.builder import Builder, BuildOptions
from worker.images import testimage
from worker.images.store import ImageStore
from worker.storage import mounts

pytestmark = pytest.mark.root


def test_a_prune_during_a_build_leaves_its_layers(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    testimage.import_test_image(store)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a")
    (ctx / "b.txt").write_text("b")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    pruned: list[int] = []

    async def emit(text: str) -> None:
        if text.startswith("Step 3/"):  # after the first COPY made its layer
            result = await asyncio.to_thread(store.prune, all_images=True)
            pruned.append(len(result.deleted))

    async def main() -> None:
        builder = Builder(store, None, scratch, emit)
        image = await builder.build(BuildOptions(
            "FROM busybox\nCOPY a.txt /a\nCOPY b.txt /b\n", tags=("kept:1",)), ctx)
        assert image.tags == ("kept:1",)
        for desc in (image.manifest.config, *image.manifest.layers):
            assert store.blobs.has(desc.digest)
        assert len(image.layers) == 4  # busybox's two, which the prune did not take, and two

    try:
        asyncio.run(main())
    finally:
        leftover = mounts.mounts_under(tmp_path)
        for point in leftover:
            mounts.unmount(Path(point))
    assert leftover == []
    assert pruned == [1]  # busybox itself went
    assert [i.tags for i in store.images()] == [("kept:1",)]
