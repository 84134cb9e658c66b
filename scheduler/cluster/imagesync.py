"""A standby scheduler's copy of the leader's images, so a failover keeps the cluster's images.

A standby with a store follows the scheduler that holds the leader key: it subscribes to the
leader's ``image`` events, lists the leader's images (``image.list``) and fetches each image it
lacks with the workers' own ``ImageFetcher`` (``image.resolve``, ``image.blob.fetch``: every
blob checked against its digest and size, every layer scanned), tagged as the leader tags it.
It syncs when it starts following a leader, after every ``image`` event, and every ``resync``
seconds in case an event was missed. A scheduler that leads does not sync.

The copy is additive: an image, or a tag, the leader no longer lists is never removed here (a
standby keeps what it has; a tag the leader moved to another image moves here too, as an
import does). An image whose fetch fails leaves nothing behind: blobs it brought that no stored
image references are deleted again. Nothing the leader answers crashes the standby: a refusal,
a malformed answer, a blob whose digest does not match, or a leader gone mid-fetch is logged and
the sync tried again after a bounded, doubling backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

import channels
from protocol.errors import ChannelError, ShoalError
from protocol.messages import EventMessage, ImageList, ListImages, WatchEvents
from protocol.observed import ImageSummary
from scheduler.cluster.images import ClusterImages
from scheduler.store import LeaderRecord
from worker.images import Image, ImageStore
from worker.images.digest import is_digest
from worker.images.fetch import ImageFetcher

log = structlog.get_logger("shoal.scheduler.imagesync")

RESYNC_INTERVAL = 30.0  # a full pass even without events: an event may have been missed
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
LIST_TIMEOUT = 30.0


class ImageSync:
    """Keeps ``images`` in step with the leader's; driven by ``follow``, ``lead`` and
    ``stand_by`` from the daemon, on its event loop."""

    def __init__(self, images: ClusterImages, name: str, options: channels.ChannelOptions, *,
                 resync: float = RESYNC_INTERVAL, backoff_start: float = BACKOFF_START,
                 backoff_max: float = BACKOFF_MAX,
                 identity: Callable[[], channels.Keypair | None] = lambda: None) -> None:
        self.store: ImageStore = images.store
        self.name = name
        self.options = options
        self.identity = identity  # the cluster's keypair: managers reach each other with it
        self.resync = resync
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.fetcher = ImageFetcher(self.store)
        self.passes = 0  # full passes that ended with every listed image here
        self.failures = 0  # passes, connections or fetches that failed
        self._leader: LeaderRecord | None = None
        self._leading = False
        self._closed = False
        self._following: LeaderRecord | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # --- driven by the daemon -----------------------------------------------------------------
    def follow(self, leader: LeaderRecord | None) -> None:
        """The leader key changed: sync from ``leader`` (None: nobody leads)."""
        self._leader = leader
        self._retarget()

    async def lead(self) -> None:
        """This scheduler leads now: stop syncing, and return once no sync is in flight."""
        self._leading = True
        await self._retarget_and_wait()

    def stand_by(self) -> None:
        """This scheduler no longer leads: sync from whoever does."""
        self._leading = False
        self._retarget()

    async def close(self) -> None:
        """Stop syncing for good."""
        self._closed = True
        await self._retarget_and_wait()

    async def until(self, predicate: Callable[[ImageSync], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked after every pass and failure."""
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()

    @property
    def following(self) -> LeaderRecord | None:
        return self._following

    def _retarget(self) -> asyncio.Task[None] | None:
        """Start following the leader to sync from, if it changed; returns the task ended."""
        leader = self._leader
        stopped = self._leading or self._closed
        target = None if stopped or leader is None or leader.id == self.name else leader
        if target == self._following:
            return None
        ended, self._task = self._task, None
        if ended is not None:
            ended.cancel()
        self._following = target
        if target is not None:
            log.info("following the leader's images", leader_id=target.id,
                     leader=target.address)
            self._task = asyncio.create_task(self._follow(target))
        return ended

    async def _retarget_and_wait(self) -> None:
        ended = self._retarget()
        if ended is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await ended

    # --- the sync -----------------------------------------------------------------------------
    async def _follow(self, leader: LeaderRecord) -> None:
        """Sync from ``leader`` until cancelled: a pass, then one per event or resync period;
        after a failure, again after a backoff."""
        backoff = self.backoff_start
        while True:
            try:
                identity = self.identity()
                security = (channels.CurveClient(identity.public, identity)
                            if identity is not None else None)
                async with await channels.connect(leader.address, self.options,
                                                  security) as conn:
                    events_tx, events = channels.pipe(capacity=1024)
                    try:
                        await conn.sender.send(WatchEvents(filters={"type": "image"},
                                                           reply=events_tx))
                        while True:
                            if await self._pass(conn.sender, leader):
                                backoff = self.backoff_start
                                await self._next_change(events)
                            else:
                                await asyncio.sleep(backoff)
                                backoff = min(backoff * 2, self.backoff_max)
                    finally:
                        events.close()
            except ShoalError as exc:
                self._failed()
                log.warning("syncing images from the leader failed; trying again",
                            leader_id=leader.id, leader=leader.address, error=str(exc),
                            retry_in=backoff)
            except Exception:  # a bug here must not end the sync for good
                self._failed()
                log.exception("syncing images from the leader failed; trying again",
                              leader_id=leader.id, leader=leader.address, retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    async def _next_change(self, events: channels.Receiver) -> None:
        """Return at the leader's next image event (and those queued behind it: one pass
        covers them all), or after the resync period. A stream that ends raises."""
        try:
            event = await asyncio.wait_for(events.recv(), self.resync)
        except TimeoutError:
            return
        if not isinstance(event, EventMessage):
            raise ChannelError(f"events.watch: expected an event, got {type(event).__name__}")
        while events.recv_nowait() is not None:
            pass

    async def _pass(self, source: channels.Sender, leader: LeaderRecord) -> bool:
        """Fetch every image the leader lists and this store lacks; add the leader's tags to
        the images here. True if every listed image is here afterwards."""
        listed = await channels.request(source, lambda r: ListImages(reply=r),
                                        timeout=LIST_TIMEOUT)
        if not isinstance(listed, ImageList):
            raise ChannelError(f"image.list: expected image.listed, got {type(listed).__name__}")
        local = {image.manifest_digest: image
                 for image in await asyncio.to_thread(self.store.images)}
        complete = True
        for summary in listed.images:
            try:
                await self._sync_image(source, summary, local.get(summary.digest))
            except ShoalError as exc:
                complete = False
                self._failed()
                log.warning("copying an image from the leader failed; will retry",
                            image=summary.id, tags=summary.tags, leader_id=leader.id,
                            error=str(exc))
        if complete:
            self.passes += 1
            self._changed.set()
            log.info("images in step with the leader", leader_id=leader.id,
                     images=len(listed.images), passes=self.passes)
        return complete

    async def _sync_image(self, source: channels.Sender, summary: ImageSummary,
                          have: Image | None) -> None:
        if have is not None:
            for tag in summary.tags:
                if tag not in have.tags:
                    await asyncio.to_thread(self.store.tag, have.manifest_digest, tag)
                    log.info("image tagged as the leader tags it", image=have.id, tag=tag)
            return
        if not is_digest(summary.digest):
            raise ChannelError(f"the leader lists image {summary.id!r} with a bad manifest "
                               f"digest {summary.digest!r}")
        before = await asyncio.to_thread(lambda: set(self.store.blobs.digests()))
        try:
            resolved = await self.fetcher.resolve(summary.digest, source)
            if resolved.manifest_digest != summary.digest:
                raise ChannelError(f"the leader resolved {summary.digest} to another manifest, "
                                   f"{resolved.manifest_digest}")
            image = await self.fetcher.fetch(summary.digest, resolved, source, resolved.tags)
        except ShoalError:
            await asyncio.to_thread(_drop_unreferenced, self.store, before)
            raise
        log.info("image synced", image=image.id, tags=list(image.tags),
                 digest=image.manifest_digest)

    def _failed(self) -> None:
        self.failures += 1
        self._changed.set()


def _drop_unreferenced(store: ImageStore, before: set[str]) -> None:
    """Delete the blobs stored since ``before`` that no image references (blocking)."""
    with store.lock:
        referenced: set[str] = set()
        for image in store.images():
            referenced.update((image.manifest_digest, image.id,
                               *(layer.digest for layer in image.manifest.layers)))
        for digest in set(store.blobs.digests()) - before - referenced:
            store.blobs.delete(digest)
