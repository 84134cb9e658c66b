"""The verbs on a container's files and on a daemon's disk: copying a path out of a container
as a tar (``docker cp`` from it), a tar into a directory of it (``docker cp`` to it), the whole
root filesystem as a tar (``docker export``), and what images, containers, volumes and the build
cache take on disk (``docker system df``)."""

# No postponed annotations (``from __future__ import annotations``) in the wire types: msgspec
# reads them when a decoder is built, and a string annotation costs an eval there (~10 ms for a
# one-shot client's first session). tests/protocol/test_package.py keeps it so.
from typing import Annotated

import msgspec

from protocol.limits import MAX_LIST_ITEMS
from protocol.messages.base import Message
from protocol.refs import ByteReaderRef, SenderRef
from protocol.specs import Name, NonNegInt, Text, Timestamp

ContainerPath = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class PathStat(msgspec.Struct, frozen=True, kw_only=True):
    """A path in a container as ``lstat`` saw it: ``mode`` is the st_mode (type and
    permission bits); ``link_target``, for a symlink, the absolute path in the container it
    resolves to."""

    name: Text
    size: NonNegInt
    mode: NonNegInt
    mtime: Timestamp
    link_target: Text = ""


# --- copying files in and out ---------------------------------------------------------------------
class StatContainerPath(Message, tag="container.path.stat", frozen=True, kw_only=True):
    """``HEAD /containers/{id}/archive``: answered with ``ContainerPathStat``; a path that
    does not exist is refused with ``NotFound`` whose details carry ``path``."""

    id: Name
    path: ContainerPath
    reply: SenderRef


class ContainerPathStat(Message, tag="container.path.statted", frozen=True, kw_only=True):
    stat: PathStat


class GetContainerArchive(Message, tag="container.archive.get", frozen=True, kw_only=True):
    """A tar of ``path`` in the container (running or not; a running one as its processes
    see it, volumes included), its entries named from the path's last component (``.`` for a
    path ending in ``/.``). Answered with ``ContainerArchive``; the tar follows on its
    stream, which is aborted with the error should the walk fail midway."""

    id: Name
    path: ContainerPath
    reply: SenderRef


class ContainerArchive(Message, tag="container.archive", frozen=True, kw_only=True):
    stat: PathStat
    data: ByteReaderRef


class PutContainerArchive(Message, tag="container.archive.put", frozen=True, kw_only=True):
    """Extract the tar the client writes on ``data`` into the directory ``path`` of the
    container. Entries that would leave the container's root, device nodes and links through
    what the tar itself made are refused. ``no_overwrite_dir_non_dir``: refuse to replace a
    directory by a non-directory or the reverse. ``copy_uid_gid``: files are owned by the
    container's user (else by the uid/gid the tar gives). Answered with ``Ok`` once all is
    written."""

    id: Name
    path: ContainerPath
    no_overwrite_dir_non_dir: bool = False
    copy_uid_gid: bool = False
    data: ByteReaderRef
    reply: SenderRef


class ExportContainer(Message, tag="container.export", frozen=True, kw_only=True):
    """The container's root filesystem (its image's layers and its own changes, no volumes)
    as a tar, answered with ``ContainerArchive`` as ``GetContainerArchive`` is."""

    id: Name
    reply: SenderRef


# --- disk usage -----------------------------------------------------------------------------------
class ImageUsage(msgspec.Struct, frozen=True, kw_only=True):
    """``size``: the image's bytes as stored; ``shared``: those of its layers that another
    image stores too; ``containers``: how many containers use it."""

    id: Name
    tags: Annotated[list[Name], msgspec.Meta(max_length=64)] = []
    created: Timestamp = 0.0
    size: NonNegInt = 0
    shared: NonNegInt = 0
    containers: NonNegInt = 0


class ContainerUsage(msgspec.Struct, frozen=True, kw_only=True):
    """``size_rw``: the bytes a container wrote over its image; ``size_root``: its whole
    root filesystem's (the image's layers included)."""

    id: Name
    name: Name
    image: Text
    image_id: Name = ""
    command: Text = ""
    created: Timestamp = 0.0
    status: Name = ""
    size_rw: NonNegInt = 0
    size_root: NonNegInt = 0
    node_id: Name = ""


class VolumeUsage(msgspec.Struct, frozen=True, kw_only=True):
    name: Name
    driver: Name = "local"
    mountpoint: Text = ""
    size: NonNegInt = 0
    containers: NonNegInt = 0
    node_id: Name = ""


class BuildCacheUsage(msgspec.Struct, frozen=True, kw_only=True):
    """One record of the build cache: the layer (``id``) a build step made, its size."""

    id: Name
    description: Text = ""
    size: NonNegInt = 0
    created: Timestamp = 0.0


class GetDiskUsage(Message, tag="system.df", frozen=True, kw_only=True):
    reply: SenderRef


class DiskUsage(Message, tag="system.df.report", frozen=True, kw_only=True):
    """``layers_size``: the bytes of every stored layer, each once."""

    layers_size: NonNegInt = 0
    images: Annotated[list[ImageUsage], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    containers: Annotated[list[ContainerUsage], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    volumes: Annotated[list[VolumeUsage], msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
    build_cache: Annotated[list[BuildCacheUsage],
                           msgspec.Meta(max_length=MAX_LIST_ITEMS)] = []
