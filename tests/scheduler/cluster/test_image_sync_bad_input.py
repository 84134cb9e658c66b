"""A standby syncing from a leader that answers badly: a malformed listing, an image it cannot
resolve, a blob whose digest does not match, a leader gone mid-fetch. Each leaves the standby's
store as it was and the sync alive, retrying with backoff; a new leader then serves it well.

The leader here is a real ``ClusterImages`` behind a real listener, its answers bent by a
``mode`` (a fake only in what it chooses to answer, speaking the real protocol)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import channels
from protocol.messages import FetchBlob, ImageList, ListImages, Message, Ok, WatchEvents
from protocol.observed import ImageSummary
from scheduler.cluster.images import ClusterImages
from scheduler.cluster.imagesync import ImageSync
from scheduler.store import LeaderRecord
from tests.helpers.in_process_cluster import CHANNELS
from tests.helpers.store_fixtures import Runner
from worker.images.testimage import import_test_image

Mode = Literal["good", "malformed", "unknown", "stall"]
GHOST = ImageSummary(id="sha256:" + "1" * 64, digest="sha256:" + "2" * 64, tags=["ghost:1"])


class BentLeader:
    """Serves image verbs from ``images``; ``mode`` bends the answers."""

    def __init__(self, images: ClusterImages, stall_digest: str) -> None:
        self.images = images
        self.mode: Mode = "good"
        self.stall_digest = stall_digest
        self.stalled = asyncio.Event()

    async def handle(self, message: Message) -> Message | None:
        if isinstance(message, WatchEvents):
            await asyncio.Event().wait()  # a stream that stays open and quiet
        if isinstance(message, ListImages):
            if self.mode == "malformed":
                return Ok()
            if self.mode == "unknown":
                return ImageList(images=[GHOST])
        if (isinstance(message, FetchBlob) and self.mode == "stall"
                and message.digest == self.stall_digest
                and isinstance(message.into, channels.ByteWriter)):
            await message.into.write(b"the first bytes")
            self.stalled.set()
            await asyncio.Event().wait()  # until the listener goes
        return await self.images.handle(message)


def snapshot(images: ClusterImages) -> tuple[set[str], bytes]:
    store = images.store
    return set(store.blobs.digests()), (store.layout / "index.json").read_bytes()


def test_bad_answers_leave_the_store_unchanged_and_the_sync_alive(run: Runner[None],
                                                                  tmp_path: Path) -> None:
    source = ClusterImages(tmp_path / "leader")
    image = import_test_image(source.store)
    layer = image.manifest.layers[0].digest
    layer_path = source.store.blobs.path(layer)
    standby = ClusterImages(tmp_path / "standby")
    before = snapshot(standby)

    async def body() -> None:
        sync = ImageSync(standby, "standby", CHANNELS, resync=3600.0, backoff_start=0.02,
                         backoff_max=0.1)
        bent = BentLeader(source, layer)
        listener = await channels.listen("tcp://127.0.0.1:0", CHANNELS)
        serving = asyncio.create_task(channels.serve(listener.receiver, bent.handle))

        async def fails_again() -> None:  # twice more: it failed, and it retried
            seen = sync.failures
            await sync.until(lambda s: s.failures >= seen + 2)
            assert snapshot(standby) == before
            assert sync.passes == 0

        try:
            for mode in ("malformed", "unknown"):
                bent.mode = mode
                sync.follow(LeaderRecord(id="bent", address=listener.address))
                await fails_again()
            bent.mode = "good"
            good = layer_path.read_bytes()
            layer_path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))  # same size
            await fails_again()  # the manifest and config it fetched are gone again
            layer_path.write_bytes(good)
            bent.mode = "stall"
            await bent.stalled.wait()
            seen = sync.failures
            await listener.close()  # the leader goes away mid-fetch
            await sync.until(lambda s: s.failures > seen)
            assert snapshot(standby) == before
        finally:
            await listener.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

        bent.mode = "good"  # a new leader elsewhere, serving well
        listener = await channels.listen("tcp://127.0.0.1:0", CHANNELS)
        serving = asyncio.create_task(channels.serve(listener.receiver, bent.handle))
        try:
            sync.follow(LeaderRecord(id="next", address=listener.address))
            await sync.until(lambda s: s.passes >= 1)
            copied = standby.store.get("busybox")
            assert (copied.id, copied.tags) == (image.id, image.tags)
        finally:
            await sync.close()
            await listener.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    run(body)
