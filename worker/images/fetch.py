"""Fetching an image this worker lacks from the scheduler's store, over channels.

``ImageFetcher.ensure(ref, source)`` returns the image from the local store, or first asks
``source`` (the scheduler's root channel) which image ``ref`` names (``image.resolve``), then
fetches its manifest, config and every layer blob it does not store yet as byte streams
(``image.blob.fetch``). ``resolve`` and ``fetch`` are its two steps, for a caller that chooses
the tags itself (a standby scheduler copying the leader's images,
``scheduler.cluster.imagesync``). Every blob goes through ``BlobStore.put``: hashed as it is
written, checked against its descriptor's digest and size, renamed into place only when it
matches, so a corrupt or truncated blob never lands. Each blob is fetched once: concurrent
requests for the same digest share one download, and a download nobody waits for any more
(every container that wanted it revoked, the agent shutting down) is abandoned: its stream
closed, its partial blob dropped. Before the image is recorded, its layers are scanned as
unpacking would judge them, as an import does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import BinaryIO, cast

import channels
from protocol.errors import ChannelError, ShoalError
from protocol.messages import FetchBlob, ImageResolved, ResolveImage
from worker.images.digest import is_digest
from worker.images.errors import DigestMismatch, ImageNotFound, InvalidImage, InvalidReference
from worker.images.layers import LayerRef
from worker.images.oci import MAX_DOCUMENT_BYTES, Descriptor, decode_config, decode_manifest
from worker.images.reference import parse_reference
from worker.images.single_flight import SingleFlight
from worker.images.store import Image, ImageStore
from worker.images.stream_file import StreamFile
from worker.images.verify import image_total, verify_layer

RESOLVE_TIMEOUT = 30.0
# A blob stream that brings nothing for this long fails the fetch: a scheduler that is alive
# but stuck must not hold the container (and the agent's command loop) forever.
IDLE_TIMEOUT = 60.0


class ImageFetcher:
    """Fills one worker's ``ImageStore`` from a scheduler's; call on the event loop."""

    def __init__(self, store: ImageStore, *, idle_timeout: float = IDLE_TIMEOUT,
                 on_data: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.idle_timeout = idle_timeout
        self.on_data = on_data  # told the size of every piece of a blob received (metrics)
        self._downloads: SingleFlight[None] = SingleFlight()

    async def ensure(self, ref: str, source: channels.Sender) -> Image:
        """The image ``ref`` names, fetched from ``source`` first if this store lacks it."""
        with contextlib.suppress(ImageNotFound):
            return await asyncio.to_thread(self.store.get, ref)
        resolved = await self.resolve(ref, source)
        return await self.fetch(ref, resolved, source, local_tags(ref, resolved.tags))

    async def resolve(self, ref: str, source: channels.Sender,
                      platform: str = "") -> ImageResolved:
        """Which image ``ref`` names at ``source`` (``image.resolve``; with ``platform``, only
        an image of that platform), its answer checked."""
        resolved = await channels.request(
            source, lambda r: ResolveImage(ref=ref, platform=platform, reply=r),
            timeout=RESOLVE_TIMEOUT)
        if not isinstance(resolved, ImageResolved):
            raise ChannelError(f"image.resolve: expected image.resolved, got "
                               f"{type(resolved).__name__}")
        for digest in (resolved.id, resolved.manifest_digest):
            if not is_digest(digest):
                raise InvalidImage(f"the scheduler named image {ref} by a bad digest {digest!r}")
        if resolved.size > MAX_DOCUMENT_BYTES:
            raise InvalidImage(f"image {ref}: its manifest is {resolved.size} bytes, more than "
                               f"the {MAX_DOCUMENT_BYTES}-byte limit")
        return resolved

    async def fetch(self, ref: str, resolved: ImageResolved, source: channels.Sender,
                    tags: list[str]) -> Image:
        """Fetch the blobs of the ``resolved`` image this store lacks from ``source``, scan its
        layers and record it under ``tags``. When it fails, no blob of it is still being
        written (what was fetched stays, unreferenced, for a retry or the next collection)."""
        try:
            await self.fetch_blob(source, resolved.manifest_digest, resolved.size)
            manifest = decode_manifest(await asyncio.to_thread(
                self.store.blobs.read, resolved.manifest_digest, MAX_DOCUMENT_BYTES))
            if manifest.config.digest != resolved.id:
                raise InvalidImage(f"image {ref}: manifest names config "
                                   f"{manifest.config.digest}, the scheduler said {resolved.id}")
            # Every blob's fetch ends before this does (a failure does not leave the others
            # running unowned); then the first failure, if any, is the answer.
            outcomes = await asyncio.gather(*(self.fetch_blob(source, d.digest, d.size)
                                              for d in (manifest.config, *manifest.layers)),
                                            return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        except ShoalError as exc:
            raise type(exc)(f"cannot fetch image {ref} from the scheduler: {exc.message}",
                            details=exc.details, code=exc.wire_code) from exc
        desc = Descriptor(resolved.media_type, resolved.manifest_digest, resolved.size)
        return await asyncio.to_thread(self._record, desc, tags)

    async def fetch_blob(self, source: channels.Sender, digest: str, size: int) -> None:
        """Store blob ``digest`` of ``size`` bytes from ``source`` unless it is here already;
        callers asking for a digest being downloaded wait for that download."""
        if not is_digest(digest):
            raise DigestMismatch(f"not a digest: {digest!r}", details={"digest": digest})
        if self.store.blobs.has(digest):
            return
        await self._downloads.run(digest, lambda: self._download(source, digest, size))

    async def _download(self, source: channels.Sender, digest: str, size: int) -> None:
        writer, reader = channels.byte_pipe()
        reply_tx, reply_rx = channels.pipe(capacity=4)
        try:
            await source.send(FetchBlob(digest=digest, into=writer, reply=reply_tx))
            stream = cast(BinaryIO, StreamFile(reader, asyncio.get_running_loop(),
                                               idle_timeout=self.idle_timeout,
                                               what=f"blob {digest}", on_data=self.on_data,
                                               details={"digest": digest}))
            put = asyncio.ensure_future(asyncio.to_thread(self.store.blobs.put, stream, digest,
                                                          size, limit=size))
            try:
                await asyncio.shield(put)
            except asyncio.CancelledError:
                # Abandoned: closing the stream fails the thread's next read, so ``put`` drops
                # the partial blob and the thread ends; wait for that, leave nothing running.
                reader.close()
                await asyncio.gather(put, return_exceptions=True)
                raise
            await reply_rx.recv()  # Ok once the server wrote it all; a refusal raises
        finally:
            reader.close()
            reply_rx.close()

    def _record(self, desc: Descriptor, tags: list[str]) -> Image:
        """Scan the fetched layers, then record the image under ``tags`` (blocking)."""
        store = self.store
        manifest = decode_manifest(store.blobs.read(desc.digest, MAX_DOCUMENT_BYTES))
        config = decode_config(store.blobs.read(manifest.config.digest, MAX_DOCUMENT_BYTES))
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise InvalidImage(f"image {manifest.config.digest}: {len(manifest.layers)} layers "
                               f"but {len(diff_ids)} diff ids")
        total = 0
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True):
            try:
                total = image_total(total, verify_layer(store, LayerRef(layer.digest, diff_id)),
                                    store.limits)
            except ShoalError:
                store.blobs.delete(layer.digest)  # refused for good: keep nothing of it
                raise
        return store.add(desc, tags)


def local_tags(ref: str, scheduler_tags: list[str]) -> list[str]:
    """Tag the fetched image with what the container asked for, when that is one of the
    scheduler's tags for it (a reference by id or digest leaves it untagged, as pulls do)."""
    try:
        tagged = parse_reference(ref).tagged
    except InvalidReference:
        return []
    return [tagged] if tagged in scheduler_tags else []
