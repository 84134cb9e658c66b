"""Import images into the store: an OCI image layout (directory or tar), a ``docker save``
tarball, or a plain rootfs tarball (``docker import``), the format detected from the contents.

Blobs are streamed from the archive into the store with their digests and sizes verified; the
store lock is held for the whole import so garbage collection cannot take blobs that are not
yet referenced. Layers are not unpacked here: that happens once per chain when a container
first needs them.
"""

from __future__ import annotations

import datetime
import enum
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import msgspec

from worker.images.archive import ArchiveSource, TarSource, open_source
from worker.images.digest import hex_of
from worker.images.errors import DigestMismatch, InvalidImage
from worker.images.hostplatform import host_platform, matches
from worker.images.oci import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_DOCUMENT_BYTES,
    MT_OCI_CONFIG,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Manifest,
    RootFS,
    decode_config,
    decode_index,
    decode_manifest,
    encode,
)
from worker.images.reference import parse_reference
from worker.images.store import Image, ImageStore
from worker.images.unpack import (
    ExpansionGuard,
    HashingReader,
    compression_of,
    decompress_errors,
    decompressor,
)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_NESTING = 4
_LAYER_TYPE = {"none": MT_OCI_LAYER, "gzip": MT_OCI_LAYER_GZIP, "zstd": MT_OCI_LAYER_ZSTD}


class ArchiveFormat(enum.Enum):
    OCI = "oci"                  # image layout, directory or tar
    DOCKER_SAVE = "docker-save"  # manifest.json + layer tars
    ROOTFS = "rootfs"            # a filesystem tarball (docker import)


@dataclass(frozen=True, slots=True)
class ImportResult:
    format: ArchiveFormat
    images: list[Image]


class _DockerSaveEntry(msgspec.Struct, frozen=True, rename="pascal"):
    config: str
    layers: list[str]
    repo_tags: list[str] | None = None


def detect_format(path: Path) -> ArchiveFormat:
    """What kind of archive ``path`` is; a directory must be an OCI layout."""
    if path.is_dir():
        if (path / "oci-layout").is_file():
            return ArchiveFormat.OCI
        raise InvalidImage(f"{path}: a directory that is not an OCI image layout (no oci-layout)")
    with path.open("rb") as f:
        head = f.read(4)
    if compression_of(head) == "zstd":
        return ArchiveFormat.ROOTFS  # tarfile cannot read zstd; only layers come that way
    source = TarSource(path)
    try:
        names = source.names()
    finally:
        source.close()
    if "oci-layout" in names and "index.json" in names:
        return ArchiveFormat.OCI
    if "manifest.json" in names:
        return ArchiveFormat.DOCKER_SAVE
    return ArchiveFormat.ROOTFS


def import_image(store: ImageStore, path: Path, tag: str | None = None, *,
                 fmt: ArchiveFormat | None = None,
                 cmd: Sequence[str] | None = None) -> ImportResult:
    """Import everything in ``path``; ``tag`` names the image (or overrides the archive's tags
    when it holds exactly one image). ``cmd`` sets Cmd for a rootfs import."""
    if tag is not None:
        tag = parse_reference(tag).tagged
    fmt = fmt or detect_format(path)
    with store.lock:
        if fmt is ArchiveFormat.ROOTFS:
            return ImportResult(fmt, [_import_rootfs(store, path, tag, cmd)])
        source = open_source(path)
        try:
            if fmt is ArchiveFormat.OCI:
                images = _import_oci(store, source, tag)
            else:
                images = _import_docker_save(store, source, tag)
        finally:
            source.close()
        return ImportResult(fmt, images)


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


def _copy_blob(store: ImageStore, source: ArchiveSource, desc: Descriptor) -> None:
    with source.open(_blob_name(desc.digest)) as f:
        store.blobs.put(f, desc.digest, desc.size, limit=store.limits.max_stream_bytes)


def _oci_tags(desc: Descriptor) -> list[str]:
    notes = desc.annotations or {}
    full = notes.get(ANNOTATION_CONTAINERD_NAME)
    if full:
        return [parse_reference(full).tagged]
    name = notes.get(ANNOTATION_REF_NAME, "")
    # A bare tag ("latest") names no repository; only a full reference becomes a tag.
    if name and any(c in name for c in ":/"):
        return [parse_reference(name).tagged]
    return []


def _manifests(store: ImageStore, source: ArchiveSource, desc: Descriptor,
               depth: int = 0) -> Descriptor:
    """The manifest ``desc`` points to, through indexes, for this host's platform."""
    if desc.media_type in MANIFEST_TYPES:
        return desc
    if desc.media_type not in INDEX_TYPES or depth >= MAX_NESTING:
        raise InvalidImage(f"unsupported descriptor {desc.media_type!r} in index",
                           details={"media_type": desc.media_type[:200]})
    index = decode_index(source.read(_blob_name(desc.digest), MAX_DOCUMENT_BYTES),
                         f"index {desc.digest}")
    host = host_platform()
    for child in index.manifests:
        if child.media_type in MANIFEST_TYPES and matches(child.platform, host):
            return child
    for child in index.manifests:
        if child.media_type in INDEX_TYPES:
            return _manifests(store, source, child, depth + 1)
    raise InvalidImage(f"index {desc.digest} has no image for {host.os}/{host.architecture}")


def _import_oci(store: ImageStore, source: ArchiveSource, tag: str | None) -> list[Image]:
    index = decode_index(source.read("index.json", MAX_DOCUMENT_BYTES))
    wanted: dict[str, tuple[Descriptor, list[str]]] = {}
    for top in index.manifests:
        desc = _manifests(store, source, top)
        _, tags = wanted.setdefault(desc.digest, (desc, []))
        tags.extend(t for t in _oci_tags(top) if t not in tags)
    if not wanted:
        raise InvalidImage("index.json lists no images")
    if tag is not None:
        if len(wanted) != 1:
            raise InvalidImage(f"the archive holds {len(wanted)} images; a tag names only one")
        for _, tags in wanted.values():
            tags[:] = [tag]
    images = []
    for desc, tags in wanted.values():
        _copy_blob(store, source, desc)
        manifest = decode_manifest(store.blobs.read(desc.digest, MAX_DOCUMENT_BYTES))
        for blob in (manifest.config, *manifest.layers):
            _copy_blob(store, source, blob)
        images.append(store.add(desc, tags))
    return images


def _put_layer(store: ImageStore, f: BinaryIO) -> Descriptor:
    digest, size = store.blobs.put(f, limit=store.limits.max_stream_bytes)
    with store.blobs.open(digest) as blob:
        kind = compression_of(blob.read(4))
    return Descriptor(_LAYER_TYPE[kind], digest, size)


def _add_manifest(store: ImageStore, config: bytes, layers: list[Descriptor],
                  tags: list[str]) -> Image:
    config_digest = store.blobs.put_bytes(config)
    manifest = Manifest(schema_version=2, media_type=MT_OCI_MANIFEST,
                        config=Descriptor(MT_OCI_CONFIG, config_digest, len(config)),
                        layers=layers)
    data = encode(manifest)
    digest = store.blobs.put_bytes(data)
    return store.add(Descriptor(MT_OCI_MANIFEST, digest, len(data)), tags)


def _import_docker_save(store: ImageStore, source: ArchiveSource,
                        tag: str | None) -> list[Image]:
    raw = source.read("manifest.json", MAX_DOCUMENT_BYTES)
    try:
        entries = msgspec.json.decode(raw, type=list[_DockerSaveEntry])
    except msgspec.DecodeError as exc:
        raise InvalidImage(f"manifest.json: {exc}") from exc
    if not entries:
        raise InvalidImage("manifest.json lists no images")
    if tag is not None and len(entries) != 1:
        raise InvalidImage(f"the archive holds {len(entries)} images; a tag names only one")
    images = []
    for entry in entries:
        config_bytes = source.read(entry.config, MAX_DOCUMENT_BYTES)
        config = decode_config(config_bytes, entry.config)
        if len(config.rootfs.diff_ids) != len(entry.layers):
            raise InvalidImage(f"{entry.config}: {len(config.rootfs.diff_ids)} diff ids for "
                               f"{len(entry.layers)} layers")
        layers = []
        for name, diff_id in zip(entry.layers, config.rootfs.diff_ids, strict=True):
            with source.open(name) as f:
                desc = _put_layer(store, f)
            if desc.media_type == MT_OCI_LAYER and desc.digest != diff_id:
                # An uncompressed layer's digest is its diff id: refuse a mismatch now.
                raise DigestMismatch(f"layer {name[:200]!r} has digest {desc.digest}, "
                                     f"config says {diff_id}", details={"layer": name[:200]})
            layers.append(desc)
        tags = [tag] if tag else [parse_reference(t).tagged for t in entry.repo_tags or []]
        images.append(_add_manifest(store, config_bytes, layers, tags))
    return images


def _diff_id(store: ImageStore, digest: str) -> str:
    """The uncompressed digest of a stored tar blob; refuses what is not a tar."""
    with store.blobs.open(digest) as blob:
        kind = compression_of(blob.read(4))
        blob.seek(0)
        stored = HashingReader(blob, None, "rootfs blob")
        inner = ExpansionGuard(decompressor(kind, cast(BinaryIO, io.BufferedReader(stored))),
                               store.limits, stored)
        errors: tuple[type[BaseException], ...] = (OSError, *decompress_errors())
        try:
            with tarfile.open(fileobj=cast(BinaryIO, io.BufferedReader(inner)),
                              mode="r|") as archive:
                for _ in archive:
                    pass
            inner.drain()
        except errors as exc:
            raise InvalidImage(f"not a (compressed) tar archive: {exc}") from exc
        return inner.digest


def _import_rootfs(store: ImageStore, path: Path, tag: str | None,
                   cmd: Sequence[str] | None) -> Image:
    with path.open("rb") as f:
        layer = _put_layer(store, f)
    diff_id = _diff_id(store, layer.digest)
    host = host_platform()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config = ImageConfig(
        architecture=host.architecture, os=host.os, variant=host.variant, created=now,
        rootfs=RootFS("layers", [diff_id]),
        config=ContainerConfig(env=[DEFAULT_PATH], cmd=list(cmd) if cmd else None),
        history=[History(created=now, created_by="shoal image import",
                         comment=f"imported from {path.name}")])
    return _add_manifest(store, encode(config), [layer], [tag] if tag else [])
