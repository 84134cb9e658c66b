"""Where a worker of a cluster gets an image it lacks: the cluster's store, or the registry.

``ImageSupply.ensure(ref, scheduler, registry)``, in this order:

1. this worker's store;
2. the cluster's store (the scheduler's), if it holds ``ref`` for this node's platform
   (``image.resolve`` with the platform; ``image.blob.fetch`` of what is missing);
3. the registry, directly, for this node's platform (a multi-platform index yields the entry
   this node runs), with the access the assignment brought (``registry``: credentials used
   for this pull and dropped);
4. when the registry cannot be reached from here (``RegistryError``: no route, TLS this host
   does not trust, a registry failing): the cluster's store pulls it for this node's platform
   (``image.pull`` from the worker's key) and the image is fetched from there by digest.

A reference is pulled once per worker however many containers want it at once: the others wait
for that pull (``SingleFlight``); when every container that wanted it is gone, the pull is
abandoned.
A reference that names no registry image (an id) is only looked for in the two stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import structlog

import channels
from protocol.errors import ChannelError
from protocol.eventfeed import EventFeed
from protocol.messages import ImagePulled, PullImage, RegistryOptions
from protocol.specs import Platform
from worker.image_events import pull_event
from worker.image_service import image_summary
from worker.images.digest import is_digest
from worker.images.errors import ImageNotFound, InvalidReference
from worker.images.fetch import ImageFetcher, local_tags
from worker.images.registry.errors import RegistryError
from worker.images.registry.names import RemoteName, remote_name
from worker.images.registry.platform_choice import wanted_for
from worker.images.registry.pull import Puller
from worker.images.registry.service import registry_access
from worker.images.registry.session import DEFAULT_CERTS_DIRS
from worker.images.single_flight import SingleFlight
from worker.images.store import Image

log = structlog.get_logger("shoal.worker.images")

PULL_TIMEOUT = 3600.0  # the cluster's store pulling for this node: as long as a big pull takes


class ImageSupply:
    """Brings images into ``fetcher.store`` for a node of ``platform``; call on the loop."""

    def __init__(self, fetcher: ImageFetcher, platform: Platform,
                 certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS,
                 events: EventFeed | None = None) -> None:
        self.fetcher = fetcher
        self.events = events  # the worker's feed: a ``pull`` event per image pulled
        self.store = fetcher.store
        self.wanted = wanted_for(platform)
        self.certs_dirs = certs_dirs
        self.pulled_directly = 0  # pulls from a registry (tests, logs)
        self.pulled_through_cluster = 0  # pulls the cluster's store made for this node
        self._flights: SingleFlight[Image] = SingleFlight()

    async def ensure(self, ref: str, scheduler: channels.Sender,
                     registry: RegistryOptions | None = None) -> Image:
        with contextlib.suppress(ImageNotFound):
            return await asyncio.to_thread(self.store.get, ref)
        return await self._flights.run(ref, lambda: self._bring(ref, scheduler, registry))

    async def _bring(self, ref: str, scheduler: channels.Sender,
                     registry: RegistryOptions | None) -> Image:
        platform = str(self.wanted)
        try:
            resolved = await self.fetcher.resolve(ref, scheduler, platform)
        except ImageNotFound:
            if is_digest(ref):
                raise  # an image id the cluster does not hold: nothing to pull
            try:
                name = remote_name(ref)
            except InvalidReference:
                raise ImageNotFound(f"no image {ref} in the cluster",
                                    details={"ref": ref}) from None
            return await self._pull(ref, name, scheduler, registry or RegistryOptions())
        return await self.fetcher.fetch(ref, resolved, scheduler,
                                        local_tags(ref, resolved.tags))

    async def _pull(self, ref: str, name: RemoteName, scheduler: channels.Sender,
                    registry: RegistryOptions) -> Image:
        try:
            result = await Puller(self.store, name,
                                  registry_access(registry, self.certs_dirs)).pull(self.wanted)
        except RegistryError as exc:
            log.info("the registry is out of reach here; the cluster's store pulls the image",
                     ref=ref, platform=str(self.wanted), error=str(exc))
            return await self._pull_through_cluster(ref, name, scheduler, registry)
        self.pulled_directly += 1
        log.info("image pulled from its registry", ref=ref, image=result.image.id,
                 platform=str(self.wanted), downloaded=result.downloaded)
        self._pulled(ref, result.image, result.digest)
        return result.image

    def _pulled(self, ref: str, image: Image, digest: str) -> None:
        if self.events is not None:
            self.events.publish(pull_event(ref, image_summary(image), digest, time.time()))

    async def _pull_through_cluster(self, ref: str, name: RemoteName,
                                    scheduler: channels.Sender,
                                    registry: RegistryOptions) -> Image:
        pulled = await channels.request(
            scheduler, lambda r: PullImage(ref=ref, platform=str(self.wanted),
                                           registry=registry, reply=r),
            timeout=PULL_TIMEOUT)
        if not isinstance(pulled, ImagePulled):
            raise ChannelError(f"image.pull: expected image.pulled, got "
                               f"{type(pulled).__name__}")
        digest = pulled.image.digest
        resolved = await self.fetcher.resolve(digest, scheduler, str(self.wanted))
        if resolved.manifest_digest != digest:
            raise ChannelError(f"the scheduler pulled {digest} and resolved it to "
                               f"{resolved.manifest_digest}")
        tag = name.local_tag
        image = await self.fetcher.fetch(ref, resolved, scheduler, [tag] if tag else [])
        self.pulled_through_cluster += 1
        log.info("image pulled through the cluster's store", ref=ref, image=image.id,
                 platform=str(self.wanted))
        self._pulled(ref, image, pulled.digest)
        return image

