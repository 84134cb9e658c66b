"""The registry verbs over channels: ``image.pull`` and ``image.push`` into and from one store.

A worker serves them on its own store, a scheduler on the cluster's (``worker.image_service``
hands them here). The credentials come with each request and live only as long as it does. Progress
is forwarded to the request's ``progress`` Sender through a bounded queue: a slow reader loses
intermediate byte counts, never a blob's start or end, and never slows the transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog

import channels
from protocol.errors import ChannelError
from protocol.messages import (
    ImagePulled,
    ImagePushed,
    PullImage,
    PushImage,
    RegistryOptions,
    TransferProgress,
)
from protocol.observed import ImageSummary
from worker.images.registry.auth import Credentials
from worker.images.registry.names import remote_name
from worker.images.registry.platform_choice import parse_platform
from worker.images.registry.progress import BlobProgress
from worker.images.registry.pull import Puller
from worker.images.registry.push import Pusher
from worker.images.registry.session import DEFAULT_CERTS_DIRS, RegistryAccess
from worker.images.store import Image, ImageStore

log = structlog.get_logger("shoal.worker.registry")

PROGRESS_QUEUE = 256
_SKIPPABLE = frozenset({"downloading", "uploading"})


def registry_access(options: RegistryOptions,
                    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS) -> RegistryAccess:
    return RegistryAccess(
        credentials=Credentials(options.username, options.password, options.identity_token),
        ca_pem=options.ca_pem, insecure=options.insecure, certs_dirs=certs_dirs)


class ProgressForwarder:
    """Sends ``BlobProgress`` events to a client's Sender without ever blocking the sender of
    the events; ``close`` flushes what is queued and closes the channel."""

    def __init__(self, target: channels.Sender | None) -> None:
        self.target = target
        self.queue: asyncio.Queue[BlobProgress | None] = asyncio.Queue(PROGRESS_QUEUE)
        self.task = asyncio.create_task(self._run()) if target is not None else None

    def __call__(self, event: BlobProgress) -> None:
        if self.task is None:
            return
        if self.queue.full() and event.action in _SKIPPABLE:
            return
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()  # an older step makes room for a start or an end
        self.queue.put_nowait(event)

    async def _run(self) -> None:
        assert self.target is not None
        with contextlib.suppress(ChannelError):
            while (event := await self.queue.get()) is not None:
                await self.target.send(TransferProgress(blob=event.blob, action=event.action,
                                                        current=event.current,
                                                        total=event.total))
        self.target.close()

    async def close(self) -> None:
        if self.task is None:
            return
        while self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        await self.task


class RegistryVerbs:
    """Pulls into and pushes from ``store``; ``certs_dirs`` are the docker-style certs.d
    directories trusted per registry host."""

    def __init__(self, store: ImageStore, summarise: Callable[[Image], ImageSummary],
                 certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS) -> None:
        self.store = store
        self.summarise = summarise  # the wire view of a stored image (the image service's)
        self.certs_dirs = certs_dirs

    async def pull(self, request: PullImage, *, tag: bool = True) -> ImagePulled:
        """Pull as ``request`` asks; without ``tag`` the image is stored by digest only."""
        name = remote_name(request.ref)
        wanted = parse_platform(request.platform) if request.platform else None
        progress = ProgressForwarder(_sender(request.progress))
        try:
            result = await Puller(self.store, name, registry_access(request.registry,
                                                                    self.certs_dirs),
                                  progress=progress).pull(wanted, tag=tag)
        finally:
            await progress.close()
        log.info("image pulled", ref=str(name), digest=result.digest, image=result.image.id,
                 downloaded=result.downloaded)
        return ImagePulled(image=self.summarise(result.image), digest=result.digest,
                           downloaded=result.downloaded)

    async def push(self, request: PushImage) -> ImagePushed:
        name = remote_name(request.ref)
        image = await asyncio.to_thread(self.store.get, request.ref)
        progress = ProgressForwarder(_sender(request.progress))
        try:
            pusher = await asyncio.to_thread(
                Pusher, self.store, image, name,
                registry_access(request.registry, self.certs_dirs), progress=progress,
                chunk_size=request.chunk_size)
            result = await pusher.push()
        finally:
            await progress.close()
        log.info("image pushed", ref=str(name), digest=result.digest, uploaded=result.uploaded,
                 mounted=result.mounted)
        return ImagePushed(digest=result.digest, size=result.size, uploaded=result.uploaded,
                           mounted=result.mounted)


def _sender(ref: object) -> channels.Sender | None:
    return ref if isinstance(ref, channels.Sender) else None
