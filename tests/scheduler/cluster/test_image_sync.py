"""A standby's copy of the leader's images: fetched when it starts following the leader and
at each ``image`` event (the periodic resync is set far off here, so the events must do it);
additive (a removal at the leader keeps the standby's copy); none once it leads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cli.images import upload_to
from protocol.messages import ImageRemoved, RemoveImage
from scheduler.cluster.imagesync import ImageSync
from scheduler.store import EmbeddedEtcd, Layout
from tests.helpers.image_layers import E, layout_from_tars, make_tar
from tests.helpers.in_process_cluster import ask, scheduler
from tests.helpers.store_fixtures import Runner
from worker.images import ImageStore
from worker.images.testimage import build_layout

NEVER = 3600.0  # no periodic resync within a test: only events and the start trigger it


def stored(root: Path) -> dict[str, tuple[str, ...]]:
    """Image id → tags, as the store under ``root`` has them."""
    return {image.id: image.tags for image in ImageStore(root).images()}


def test_a_standby_copies_the_leaders_images_at_start_and_on_each_import(
        run: Runner[None], etcd: EmbeddedEtcd, layout: Layout, tmp_path: Path) -> None:
    busybox = build_layout(tmp_path / "busybox")
    hello = layout_from_tars(tmp_path / "hello", [make_tar([E("hello", data=b"hi\n")])],
                             "hello:1")

    async def passes(sync: ImageSync | None, n: int) -> None:
        assert sync is not None
        await sync.until(lambda s: s.passes >= n)

    async def body() -> None:
        async with scheduler(etcd, layout, "s1", state_dir=tmp_path / "s1") as s1:
            await s1.leading.wait()
            await asyncio.to_thread(upload_to, s1.address, busybox)  # before the standby exists
            async with scheduler(etcd, layout, "s2", state_dir=tmp_path / "s2",
                                 image_resync=NEVER) as s2:
                await passes(s2.image_sync, 1)  # it started following the leader
                assert stored(tmp_path / "s2" / "images") == stored(tmp_path / "s1" / "images")
                await asyncio.to_thread(upload_to, s1.address, hello)
                await passes(s2.image_sync, 2)  # the import's event
                leader_images = stored(tmp_path / "s1" / "images")
                assert len(leader_images) == 2
                assert stored(tmp_path / "s2" / "images") == leader_images
                removed = await ask(s1.address, lambda r: RemoveImage(ref="hello:1", reply=r))
                assert isinstance(removed, ImageRemoved) and removed.deleted
                await passes(s2.image_sync, 3)  # the removal's event: nothing removed here
                assert stored(tmp_path / "s2" / "images") == leader_images
                assert s1.image_sync is not None and s1.image_sync.following is None
            assert s1.image_sync.passes == 0  # a leader never syncs

    run(body)
