"""The image verbs over channels: import (from a byte stream), list, inspect, tag and remove;
pull and push are handed to ``worker.images.registry.service`` (loaded on the first such request:
it brings aiohttp).

A worker chains this service after its container verbs: it answers only the image requests
(``IMAGE_REQUESTS``) and refuses anything else with ``Unsupported``. An import is spooled to a
temp file under the store (the importers need to seek), bounded by a size limit, imported with
every digest checked and every layer scanned as unpacking would judge it; a refused or
cancelled import (the client aborted or vanished) leaves nothing behind. Store calls block, so
they run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import shutil
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import msgspec
import structlog

import channels
from protocol.errors import InvalidArgument, Unavailable, Unsupported
from protocol.limits import MAX_LAYERS, MAX_LIST_ITEMS, MAX_TAGS
from protocol.messages import (
    HistoryEntry,
    ImageHistory,
    ImageHistoryList,
    ImageImported,
    ImageInspected,
    ImageList,
    ImagePulled,
    ImageRemoved,
    ImportImage,
    InspectImage,
    ListImages,
    Message,
    Ok,
    PullImage,
    PushImage,
    RemoveImage,
    TagImage,
)
from protocol.observed import ImageInfo, ImageRunConfig, ImageSummary
from worker.images import ArchiveFormat, Image, ImageStore, InvalidImage, import_image
from worker.images.importer import ImportResult
from worker.images.reference import parse_reference
from worker.images.verify import verify_image

if TYPE_CHECKING:
    from worker.images.registry.service import RegistryVerbs

log = structlog.get_logger("shoal.worker.images")

IMAGE_REQUESTS: tuple[type[Message], ...] = (ImportImage, ListImages, InspectImage, RemoveImage,
                                             TagImage, PullImage, PushImage, ImageHistory)
DEFAULT_MAX_IMPORT_BYTES = 32 * 1024 ** 3
SPOOL_BATCH = 1024 * 1024  # bytes gathered from the stream before one write to the spool file
FORMATS: dict[str, ArchiveFormat | None] = {
    "auto": None, "oci": ArchiveFormat.OCI, "docker": ArchiveFormat.DOCKER_SAVE,
    "rootfs": ArchiveFormat.ROOTFS,
}
MAX_HISTORY_TEXT = 16 * 1024  # a history step's text, cut (a RUN's whole script can be long)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


class ImageService:
    """Answers the image verbs from one store.

    ``in_use`` gives the ids of the images containers use (they are never deleted); it is
    called on the event loop. Imports are spooled under ``spool_dir`` (default ``<store>/spool``,
    emptied here: what is there is left from a worker that died mid-import).
    """

    def __init__(self, store: ImageStore, *, in_use: Callable[[], Collection[str]] = frozenset,
                 spool_dir: Path | None = None,
                 max_import_bytes: int = DEFAULT_MAX_IMPORT_BYTES,
                 registry_certs: tuple[Path, ...] | None = None) -> None:
        self.store = store
        self.registry_certs = registry_certs  # None: docker's and containers' certs.d
        self._registry: RegistryVerbs | None = None
        self.in_use = in_use
        self.spool_dir = spool_dir or store.root / "spool"
        self.max_import_bytes = max_import_bytes
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    async def handle(self, message: Message) -> Message | None:
        store = self.store
        match message:
            case ImportImage():
                return await self._import(message)
            case ListImages():
                images = await asyncio.to_thread(store.images)
                return ImageList(images=[image_summary(image) for image in images])
            case InspectImage(ref=ref):
                image = await asyncio.to_thread(store.get, ref)
                return ImageInspected(info=image_info(image))
            case ImageHistory(ref=ref):
                image = await asyncio.to_thread(store.get, ref)
                return ImageHistoryList(entries=image_history(image))
            case TagImage(source=source, target=target):
                image = await asyncio.to_thread(store.tag, source, target)
                log.info("image tagged", image=image.id, tag=target)
                return Ok()
            case PullImage():
                return await self.pull(message)
            case PushImage():
                return await self._registry_verbs().push(message)
            case RemoveImage(ref=ref, force=force):
                busy = frozenset(self.in_use())
                result = await asyncio.to_thread(store.remove, ref, force=force, in_use=busy)
                log.info("image removed", ref=ref, untagged=result.untagged,
                         deleted=result.deleted)
                return ImageRemoved(untagged=result.untagged, deleted=result.deleted)
        raise Unsupported(f"the image service does not serve {type(message).__name__}")

    async def pull(self, request: PullImage, *, tag: bool = True) -> ImagePulled:
        """``image.pull``; without ``tag`` the image is stored by digest only."""
        return await self._registry_verbs().pull(request, tag=tag)

    def _registry_verbs(self) -> RegistryVerbs:
        if self._registry is None:
            from worker.images.registry.service import RegistryVerbs

            self._registry = (RegistryVerbs(self.store, image_summary)
                              if self.registry_certs is None else
                              RegistryVerbs(self.store, image_summary, self.registry_certs))
        return self._registry

    # --- import ----------------------------------------------------------------------------------
    async def _import(self, request: ImportImage) -> ImageImported:
        data = request.data
        if not isinstance(data, channels.ByteReader):
            raise InvalidArgument("image.import needs a byte stream to read the archive from")
        try:
            tag = parse_reference(request.name).tagged if request.name else None
            spool = Path(tempfile.mkdtemp(prefix="import-", dir=self.spool_dir))
        except BaseException:
            data.close()  # the client's writer stops at once; the reply says why
            raise
        try:
            archive = spool / (_SAFE_NAME.sub("_", Path(request.source).name)[:100] or "archive")
            size = await self._spool(data, archive)
            result = await asyncio.to_thread(self.import_file, archive, tag,
                                             FORMATS[request.format])
        finally:
            data.close()
            await asyncio.to_thread(shutil.rmtree, spool, True)
        images = [image_summary(image) for image in result.images]
        log.info("image imported", format=result.format.value, bytes=size,
                 images=[(i.id, i.tags) for i in images])
        return ImageImported(images=images, format=result.format.value)

    async def _spool(self, data: channels.ByteReader, path: Path) -> int:
        return await spool_stream(data, path, self.max_import_bytes, "import")

    def import_file(self, path: Path, tag: str | None,
                     fmt: ArchiveFormat | None) -> ImportResult:
        with self.store.undo_on_error():
            result = import_image(self.store, path, tag, fmt=fmt)
            for image in result.images:
                verify_image(self.store, image)
        return result


async def spool_stream(data: channels.ByteReader, path: Path, limit: int, what: str) -> int:
    """Copy the stream into ``path``; returns its length. Stream errors (the client aborted
    or vanished) propagate; so does a stream over ``limit`` bytes."""
    total = 0
    batch: list[bytes] = []
    batched = 0
    try:
        with path.open("wb") as out:
            while chunk := await data.read():
                total += len(chunk)
                if total > limit:
                    raise InvalidImage(f"the {what} is larger than the {limit}-byte {what} "
                                       "limit",
                                       details={"limit": str(limit)})
                batch.append(chunk)
                batched += len(chunk)
                if batched >= SPOOL_BATCH:
                    await asyncio.to_thread(_write_all, out, batch)
                    batch, batched = [], 0
            await asyncio.to_thread(_write_all, out, batch)
    except OSError as exc:
        raise Unavailable(f"cannot spool the {what}: {exc.strerror or exc}") from exc
    return total


def _write_all(out: BinaryIO, chunks: list[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)


# --- wire views of stored images -----------------------------------------------------------------
def created_timestamp(created: str | None) -> float:
    """An RFC 3339 time from an image config as UNIX seconds; 0 when absent or unreadable."""
    if not created:
        return 0.0
    text = re.sub(r"(\.\d{6})\d+", r"\1", created.strip())  # Python takes microseconds at most
    with contextlib.suppress(ValueError, OverflowError):
        moment = datetime.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return max(0.0, moment.timestamp())
    return 0.0


def image_summary(image: Image) -> ImageSummary:
    config = image.config
    return ImageSummary(id=image.id, tags=list(image.tags[:MAX_TAGS]),
                        digest=image.manifest_digest, size=image.size,
                        created=created_timestamp(config.created), os=config.os,
                        arch=config.architecture, variant=config.variant or "")


def image_history(image: Image) -> list[HistoryEntry]:
    """The config's history, newest first, each step that made a layer given that layer
    (the next of the manifest's, in order) and its stored size; the newest step carries the
    image's id and tags, as ``docker history`` shows them."""
    layers = list(zip(image.config.rootfs.diff_ids, image.manifest.layers, strict=False))
    steps = list(image.config.history or [])
    entries = []
    for step in steps:
        layer, size = "", 0
        if not step.empty_layer and layers:
            diff_id, descriptor = layers.pop(0)
            layer, size = diff_id, descriptor.size
        entries.append(HistoryEntry(created=created_timestamp(step.created),
                                    created_by=(step.created_by or "")[:MAX_HISTORY_TEXT],
                                    comment=(step.comment or "")[:MAX_HISTORY_TEXT],
                                    layer=layer, size=size))
    for diff_id, descriptor in layers:  # layers the history does not tell of (an import)
        entries.append(HistoryEntry(created=created_timestamp(image.config.created),
                                    layer=diff_id, size=descriptor.size))
    entries.reverse()
    entries = entries[:MAX_LIST_ITEMS]
    if entries:
        entries[0] = msgspec.structs.replace(entries[0], image_id=image.id,
                                             tags=list(image.tags[:MAX_TAGS]))
    return entries


def image_info(image: Image) -> ImageInfo:
    d = image.defaults
    return ImageInfo(
        summary=image_summary(image), author=image.config.author or "",
        media_type=image.manifest_media_type,
        config=ImageRunConfig(entrypoint=list(d.entrypoint), cmd=list(d.cmd), env=list(d.env),
                              working_dir=d.working_dir, user=d.user,
                              exposed_ports=list(d.exposed_ports), stop_signal=d.stop_signal,
                              labels=dict(d.labels), volumes=list(d.volumes),
                              healthcheck=d.healthcheck),
        layers=list(image.config.rootfs.diff_ids[:MAX_LAYERS]))

