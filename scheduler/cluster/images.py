"""The cluster's images: the scheduler's own content-addressed store, the image verbs on it,
and the blobs workers fetch from it.

``shoal image import`` against a scheduler lands here (the same ``ImageService`` a worker runs,
so every digest is checked and every layer scanned at import). A worker assigned a container
whose image it lacks resolves the reference (``image.resolve``) and fetches the missing blobs
(``image.blob.fetch``), each written on the worker's byte stream as stored; the worker checks
the digests. ``served`` counts the blobs written out, per digest, for logs and tests.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import structlog

import channels
from protocol.errors import Internal, InvalidArgument, ShoalError
from protocol.limits import MAX_TAGS
from protocol.messages import FetchBlob, ImageResolved, Message, Ok, ResolveImage
from worker.image_service import IMAGE_REQUESTS, ImageService
from worker.images import ImageStore
from worker.images.blobs import CHUNK
from worker.images.digest import is_digest
from worker.images.errors import BlobNotFound

log = structlog.get_logger("shoal.scheduler.images")

CLUSTER_IMAGE_REQUESTS: tuple[type[Message], ...] = (*IMAGE_REQUESTS, ResolveImage, FetchBlob)


class ClusterImages:
    """Answers the image verbs, ``image.resolve`` and ``image.blob.fetch`` from one store under
    ``root`` (the scheduler's state dir), which this scheduler process owns."""

    def __init__(self, root: Path) -> None:
        self.store = ImageStore(root)
        self.store.recover()
        self.service = ImageService(self.store)
        self.served: collections.Counter[str] = collections.Counter()

    async def handle(self, message: Message) -> Message | None:
        if isinstance(message, ResolveImage):
            image = await asyncio.to_thread(self.store.get, message.ref)
            size = await asyncio.to_thread(self.store.blobs.size, image.manifest_digest)
            return ImageResolved(id=image.id, manifest_digest=image.manifest_digest,
                                 media_type=image.manifest_media_type, size=size,
                                 tags=list(image.tags[:MAX_TAGS]))
        if isinstance(message, FetchBlob):
            await self._send_blob(message)
            return Ok()
        return await self.service.handle(message)

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
