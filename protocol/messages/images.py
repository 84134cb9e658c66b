"""The image verbs: import, list, inspect, remove, build, prune, save, pull, push, tag."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated, Literal

import msgspec

from protocol.limits import (
    MAX_LIST_ITEMS,
    MAX_NAME_LEN,
    MAX_TAGS,
)
from protocol.messages.base import Message, RegistryOptions
from protocol.observed import ImageInfo, ImageSummary
from protocol.refs import ByteReaderRef, ByteWriterRef, SenderRef
from protocol.specs import ImageRef, Labels, Name, NonNegInt, Text


# --- image verbs ---------------------------------------------------------------------------------
class ImportImage(Message, tag="image.import", frozen=True, kw_only=True):
    """Imports an image from a tarball the client writes on ``data``; answered with
    ``ImageImported`` once the stream has ended and the image is stored.

    ``name`` (``name[:tag]``) tags the image; empty keeps the archive's own tags (an OCI layout
    or ``docker save`` tarball) or leaves a rootfs import untagged.
    """

    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LEN)]
    format: Literal["auto", "oci", "docker", "rootfs"] = "auto"
    data: ByteReaderRef
    source: Name = ""  # the client's file name, for the image's history
    reply: SenderRef


class ImageImported(Message, tag="image.imported", frozen=True, kw_only=True):
    """The images an import stored (one, unless an archive without ``name`` held several), and
    the format it was read as (``oci``, ``docker-save``, ``rootfs``)."""

    images: Annotated[list[ImageSummary], msgspec.Meta(max_length=MAX_LIST_ITEMS)]
    format: Name = ""


class ListImages(Message, tag="image.list", frozen=True, kw_only=True):
    reply: SenderRef


class ImageList(Message, tag="image.listed", frozen=True, kw_only=True):
    images: Annotated[list[ImageSummary], msgspec.Meta(max_length=MAX_LIST_ITEMS)]


class InspectImage(Message, tag="image.inspect", frozen=True, kw_only=True):
    """``ref`` is ``name[:tag]``, ``name@digest``, a full or short image id."""

    ref: ImageRef
    reply: SenderRef


class ImageInspected(Message, tag="image.inspected", frozen=True, kw_only=True):
    info: ImageInfo


class RemoveImage(Message, tag="image.remove", frozen=True, kw_only=True):
    """``docker rmi``: untag ``ref``; delete the image once no tag is left. ``force`` removes an
    image with several tags by id, or the last tag of an image containers use (the image stays,
    untagged)."""

    ref: ImageRef
    force: bool = False
    reply: SenderRef


class ImageRemoved(Message, tag="image.removed", frozen=True, kw_only=True):
    untagged: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    deleted: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []  # image ids


MAX_DOCKERFILE_BYTES = 1024 * 1024
MAX_SAVE_CHUNK = 1024 * 1024


class BuildImage(Message, tag="image.build", frozen=True, kw_only=True):
    """``docker build``: the client writes the context (a tar, ``.dockerignore`` already
    applied) on ``context``; the Dockerfile's text comes in the request (``-f`` may name a file
    outside the context). The worker answers with ``BuildOutput`` messages as the steps run,
    then one ``BuildResult``, and ends the stream; a failed build is refused with the error
    (``request.invalid_argument.dockerfile`` naming the line, ``request.build_failed`` with
    a RUN's exit code)."""

    dockerfile: Annotated[str, msgspec.Meta(max_length=MAX_DOCKERFILE_BYTES)]
    dockerfile_name: Name = "Dockerfile"
    tags: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_TAGS)] = []
    build_args: Labels = {}
    target: Name = ""
    no_cache: bool = False
    platform: Name = ""
    context: ByteReaderRef
    reply: SenderRef


class BuildOutput(Message, tag="image.build.output", frozen=True, kw_only=True):
    text: Text


class BuildResult(Message, tag="image.built", frozen=True, kw_only=True):
    image: ImageSummary


class PruneImages(Message, tag="image.prune", frozen=True, kw_only=True):
    """``docker image prune [-a]``: untagged images (``all``: every image) no container uses
    are deleted, the build cache is cleared, unreferenced blobs are collected."""

    all: bool = False
    reply: SenderRef


class ImagesPruned(Message, tag="image.pruned", frozen=True, kw_only=True):
    deleted: Annotated[list[Name], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    untagged: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    cache_records: NonNegInt = 0
    reclaimed: NonNegInt = 0  # bytes


class SaveImages(Message, tag="image.save", frozen=True, kw_only=True):
    """``docker save``: the images as one tar, an OCI image layout or a ``docker save``
    archive, sent as ``ImageChunk`` messages on ``reply``; the stream ends after the last."""

    refs: Annotated[list[ImageRef], msgspec.Meta(min_length=1, max_length=MAX_TAGS)]
    format: Literal["oci", "docker"] = "docker"
    reply: SenderRef


class ImageChunk(Message, tag="image.chunk", frozen=True, kw_only=True):
    data: Annotated[bytes, msgspec.Meta(max_length=MAX_SAVE_CHUNK)]


class FetchBlob(Message, tag="image.blob.fetch", frozen=True, kw_only=True):
    """Asks for a content-addressed blob: the server writes it on ``into`` and closes it, then
    answers ``Ok``; the reader checks the digest. Refused (``into`` aborted too) with
    ``request.not_found.blob`` for a blob the server does not store."""

    digest: Name
    into: ByteWriterRef
    reply: SenderRef


class ResolveImage(Message, tag="image.resolve", frozen=True, kw_only=True):
    """Which image ``ref`` names on the server, and its manifest's descriptor: what a worker
    asks before it fetches an image's blobs. With ``platform`` (``os/arch[/variant]``), an
    image of another platform is not found. Answered with ``ImageResolved``."""

    ref: ImageRef
    platform: Name = ""
    reply: SenderRef


class ImageResolved(Message, tag="image.resolved", frozen=True, kw_only=True):
    """An image as stored: ``id`` (its config digest) and its manifest (digest, media type,
    size), from which the fetcher learns the config and layer blobs."""

    id: Name
    manifest_digest: Name
    media_type: Name
    size: NonNegInt
    tags: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_TAGS)] = []


# --- registries (pull, push, tag) ----------------------------------------------------------------
class PullImage(Message, tag="image.pull", frozen=True, kw_only=True):
    """Pulls ``ref`` (``name[:tag|@digest]``) from its registry into the server's store; for a
    multi-platform image the entry for ``platform`` (``os/arch[/variant]``, empty: the
    server's own). Progress goes to ``progress`` as ``TransferProgress`` messages (closed at
    the end). Answered with ``ImagePulled``."""

    ref: ImageRef
    platform: Name = ""
    registry: RegistryOptions = RegistryOptions()
    progress: SenderRef | None = None
    reply: SenderRef


class ImagePulled(Message, tag="image.pulled", frozen=True, kw_only=True):
    """``digest`` is what the reference named (a multi-platform index's own digest, as docker
    shows it); ``downloaded`` counts the blobs fetched (0: it was up to date)."""

    image: ImageSummary
    digest: Name
    downloaded: NonNegInt = 0


class PushImage(Message, tag="image.push", frozen=True, kw_only=True):
    """Pushes the stored image ``ref`` (``registry/name:tag``) to its registry; progress as for
    a pull. ``chunk_size`` > 0 uploads blobs in chunks of that many bytes (else one request
    each). Answered with ``ImagePushed``."""

    ref: ImageRef
    registry: RegistryOptions = RegistryOptions()
    chunk_size: NonNegInt = 0
    progress: SenderRef | None = None
    reply: SenderRef


class ImagePushed(Message, tag="image.pushed", frozen=True, kw_only=True):
    digest: Name
    size: NonNegInt
    uploaded: NonNegInt = 0
    mounted: NonNegInt = 0


class TransferProgress(Message, tag="image.progress", frozen=True, kw_only=True):
    """One step of a blob's transfer: ``action`` is waiting, exists, downloading, resuming,
    verifying, done, uploading, mounted or pushed; ``current`` of ``total`` bytes."""

    blob: Name
    action: Name
    current: NonNegInt = 0
    total: NonNegInt = 0


class TagImage(Message, tag="image.tag", frozen=True, kw_only=True):
    """``docker tag``: ``target`` (``name[:tag]``) names the image ``source`` names (moved
    from any image it named before). Answered with ``Ok``."""

    source: ImageRef
    target: ImageRef
    reply: SenderRef


class ImageHistory(Message, tag="image.history", frozen=True, kw_only=True):
    """``docker history``: the image config's history, newest first. Answered with
    ``ImageHistoryList``."""

    ref: ImageRef
    reply: SenderRef


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One step of an image's history: ``layer`` is the layer it made (its diff id, "" for a
    step that made none), ``size`` that layer's bytes as stored (compressed, as pulled)."""

    created: float = 0.0
    created_by: Text = ""
    comment: Text = ""
    layer: Name = ""
    size: NonNegInt = 0
    tags: Annotated[list[ImageRef], msgspec.Meta(max_length=MAX_TAGS)] = []
    image_id: Name = ""  # the image's id on its newest entry, as docker shows it


class ImageHistoryList(Message, tag="image.history.listed", frozen=True, kw_only=True):
    entries: Annotated[list[HistoryEntry], msgspec.Meta(max_length=MAX_LIST_ITEMS)]
