"""The cluster's images: the scheduler's own content-addressed store, the image verbs on it,
and the blobs workers fetch from it.

``shoal image import`` against a scheduler lands here (the same ``ImageService`` a worker runs,
so every digest is checked and every layer scanned at import). A worker assigned a container
whose image it lacks resolves the reference (``image.resolve``) and fetches the missing blobs
(``image.blob.fetch``), each written on the worker's byte stream as stored; the worker checks
the digests. A resolve for a platform finds only an image of that platform. A worker that
cannot reach an image's registry asks the cluster's store to pull it for its platform
(``pull_for_node``), then fetches it from here. ``served`` counts the blobs written out, per
digest, for logs and tests.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import structlog

import channels
from protocol.errors import Internal, InvalidArgument, ShoalError
from protocol.limits import MAX_TAGS
from protocol.messages import (
    BuildCacheUsage,
    FetchBlob,
    ImagePulled,
    ImageResolved,
    ImageUsage,
    Message,
    Ok,
    PullImage,
    ResolveImage,
)
from worker.image_service import IMAGE_REQUESTS, ImageService
from worker.images import Image, ImageStore
from worker.images.blobs import CHUNK
from worker.images.digest import is_digest
from worker.images.errors import BlobNotFound, ImageNotFound
from worker.images.registry import parse_platform, platform_fits, remote_name
from worker.images.usage import build_cache_usage, image_usage

log = structlog.get_logger("shoal.scheduler.images")

CLUSTER_IMAGE_REQUESTS: tuple[type[Message], ...] = (*IMAGE_REQUESTS, ResolveImage, FetchBlob)


class ClusterImages:
    """Answers the image verbs, ``image.resolve`` and ``image.blob.fetch`` from one store under
    ``root`` (the scheduler's state dir), which this scheduler process owns."""

    def __init__(self, root: Path, registry_certs: tuple[Path, ...] | None = None) -> None:
        self.store = ImageStore(root)
        self.store.recover()
        # registry_certs: the certs.d directories trusted per registry (None: docker's).
        self.service = ImageService(self.store, registry_certs=registry_certs)
        self.served: collections.Counter[str] = collections.Counter()

    async def handle(self, message: Message) -> Message | None:
        if isinstance(message, ResolveImage):
            image = await asyncio.to_thread(self.store.get, message.ref)
            if message.platform and not _fits(image, message.platform):
                raise ImageNotFound(f"the cluster's store has {message.ref} for "
                                    f"{image.platform}, not {message.platform}",
                                    details={"ref": message.ref,
                                             "platform": message.platform})
            size = await asyncio.to_thread(self.store.blobs.size, image.manifest_digest)
            return ImageResolved(id=image.id, manifest_digest=image.manifest_digest,
                                 media_type=image.manifest_media_type, size=size,
                                 tags=list(image.tags[:MAX_TAGS]))
        if isinstance(message, FetchBlob):
            await self._send_blob(message)
            return Ok()
        return await self.service.handle(message)

    async def usage(self, users: collections.Counter[str],
                    ) -> tuple[list[ImageUsage], list[BuildCacheUsage], int]:
        """The cluster store's images (``users``: containers per image id), build cache and
        layer bytes, as ``system.df`` reports them."""
        images, layers = await asyncio.to_thread(image_usage, self.store, users)
        cache = await asyncio.to_thread(build_cache_usage, self.store)
        return images, cache, layers

    async def pull_for_node(self, message: PullImage) -> ImagePulled:
        """A worker's pull of an image for its platform (``message.platform``): the tag moves
        to it only when it names no image, or one of that platform (a node of another platform
        does not take the tag from the image the others run); the worker fetches it by
        digest."""
        try:
            holder: Image | None = await asyncio.to_thread(self.store.get,
                                                           remote_name(message.ref).local_tag
                                                           or message.ref)
        except ImageNotFound:
            holder = None
        tag = holder is None or not message.platform or _fits(holder, message.platform)
        return await self.service.pull(message, tag=tag)

    async def _send_blob(self, message: FetchBlob) -> None:
        into = message.into
        if not isinstance(into, channels.ByteWriter):
            raise InvalidArgument("image.blob.fetch needs a byte stream to write the blob on")
        digest = message.digest
        try:
            if not is_digest(digest):
                raise InvalidArgument(f"not a digest: {digest!r}", details={"digest": digest})
            if not self.store.blobs.has(digest):
                raise BlobNotFound(f"the scheduler has no blob {digest}",
                                   details={"digest": digest})
            # An open file stays readable even if an image removal collects the blob meanwhile.
            blob = await asyncio.to_thread(self.store.blobs.open, digest)
            try:
                sent = 0
                while chunk := await asyncio.to_thread(blob.read, CHUNK):
                    await into.write(chunk)
                    sent += len(chunk)
            finally:
                blob.close()
        except ShoalError as exc:
            into.abort(exc)
            raise
        except OSError as exc:
            error = Internal(f"reading blob {digest}: {exc.strerror or exc}")
            into.abort(error)
            raise error from exc
        into.close()
        self.served[digest] += 1
        log.info("blob served", digest=digest, bytes=sent)


def _fits(image: Image, platform: str) -> bool:
    config = image.config
    return platform_fits(config.os, config.architecture, config.variant or "",
                         parse_platform(platform))
