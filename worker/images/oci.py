"""Typed OCI image documents: descriptors, manifests, indexes and image configs.

Decoding goes through ``decode_*`` which bound the size, validate the shape and turn any
failure into ``InvalidImage``. Docker's schema-2 media types are accepted beside OCI's, since a
``docker save`` tarball and many OCI layouts use them; the documents are kept byte-for-byte as
imported (their digests depend on it), these structs are only read views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import msgspec

from protocol.specs import HealthCheck
from worker.images.digest import check_digest
from worker.images.errors import InvalidImage

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # manifests and configs; real ones are a few KiB

OCI_LAYOUT_VERSION = "1.0.0"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = frozenset({MT_OCI_INDEX, MT_DOCKER_LIST})
MANIFEST_TYPES = frozenset({MT_OCI_MANIFEST, MT_DOCKER_MANIFEST})
LAYER_TYPES = frozenset({
    MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD, MT_DOCKER_LAYER,
    # Non-distributable layers are ordinary layers once they are in a local store.
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

Size = Annotated[int, msgspec.Meta(ge=0)]


class Platform(msgspec.Struct, frozen=True, omit_defaults=True):
    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = msgspec.field(default=None, name="os.version")  # Windows builds


class Descriptor(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    media_type: str
    digest: str
    size: Size
    annotations: dict[str, str] | None = None
    platform: Platform | None = None


class Index(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    schema_version: int
    manifests: list[Descriptor]
    media_type: str | None = None
    annotations: dict[str, str] | None = None


class Manifest(msgspec.Struct, frozen=True, omit_defaults=True, rename="camel"):
    schema_version: int
    config: Descriptor
    layers: list[Descriptor]
    media_type: str | None = None
    annotations: dict[str, str] | None = None


class ImageHealthcheck(msgspec.Struct, frozen=True, omit_defaults=True, rename="pascal"):
    """Docker's ``Healthcheck`` in an image config: durations in nanoseconds, 0 = inherit."""

    test: list[str] | None = None
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def as_spec(self) -> HealthCheck | None:
        """The same as a spec's healthcheck (seconds); None when it says nothing."""
        if not self.test and not any((self.interval, self.timeout, self.start_period,
                                      self.start_interval, self.retries)):
            return None
        # A negative value (Docker refuses one at build) counts as unset: the default.
        return HealthCheck(test=list(self.test or ()), interval=max(0, self.interval) / 1e9,
                           timeout=max(0, self.timeout) / 1e9,
                           start_period=max(0, self.start_period) / 1e9,
                           start_interval=max(0, self.start_interval) / 1e9,
                           retries=max(0, self.retries))


class ContainerConfig(msgspec.Struct, frozen=True, omit_defaults=True, rename="pascal"):
    """The ``config`` object of an image config; Docker writes ``null`` for empty fields."""

    user: str | None = None
    exposed_ports: dict[str, object] | None = None
    env: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, object] | None = None
    working_dir: str | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    healthcheck: ImageHealthcheck | None = None
    shell: list[str] | None = None


class RootFS(msgspec.Struct, frozen=True):
    type: str
    diff_ids: list[str]


class History(msgspec.Struct, frozen=True, omit_defaults=True):
    created: str | None = None
    created_by: str | None = None
    comment: str | None = None
    empty_layer: bool = False


class ImageConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    architecture: str
    os: str
    rootfs: RootFS
    variant: str | None = None
    created: str | None = None
    author: str | None = None
    config: ContainerConfig | None = None
    history: list[History] | None = None


@dataclass(frozen=True, slots=True)
class ContainerDefaults:
    """What an image contributes to a container's spec, with Docker's empty values filled in.

    The engine overlays the user's flags (``--entrypoint``, ``-e``, ``-w``, ``-u``) on these.
    """

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    healthcheck: HealthCheck | None = None

    @classmethod
    def from_config(cls, config: ContainerConfig | None) -> ContainerDefaults:
        if config is None:
            return cls()
        return cls(
            entrypoint=tuple(config.entrypoint or ()),
            cmd=tuple(config.cmd or ()),
            env=tuple(config.env or ()),
            working_dir=config.working_dir or "",
            user=config.user or "",
            exposed_ports=tuple(sorted(config.exposed_ports or {})),
            stop_signal=config.stop_signal or "",
            labels=dict(config.labels or {}),
            volumes=tuple(sorted(config.volumes or {})),
            healthcheck=config.healthcheck.as_spec() if config.healthcheck else None,
        )


T = TypeVar("T")


def _decode(data: bytes, kind: type[T], what: str) -> T:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidImage(f"{what} is {len(data)} bytes, over the {MAX_DOCUMENT_BYTES} limit")
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass: both are "bad JSON"
        raise InvalidImage(f"{what}: {exc}", details={"document": what}) from exc


def _check_descriptor(desc: Descriptor, what: str) -> None:
    try:
        check_digest(desc.digest)
    except InvalidImage as exc:
        raise InvalidImage(f"{what}: {exc.message}", details={"document": what}) from exc


def decode_index(data: bytes, what: str = "index.json") -> Index:
    index = _decode(data, Index, what)
    if index.schema_version != 2:
        raise InvalidImage(f"{what}: schemaVersion {index.schema_version}, expected 2")
    for desc in index.manifests:
        _check_descriptor(desc, what)
    return index


def decode_manifest(data: bytes, what: str = "manifest") -> Manifest:
    manifest = _decode(data, Manifest, what)
    if manifest.schema_version != 2:
        raise InvalidImage(f"{what}: schemaVersion {manifest.schema_version}, expected 2")
    _check_descriptor(manifest.config, what)
    for desc in manifest.layers:
        _check_descriptor(desc, what)
        if desc.media_type not in LAYER_TYPES:
            raise InvalidImage(f"{what}: unsupported layer media type {desc.media_type!r}",
                               details={"media_type": desc.media_type[:200]})
    return manifest


def decode_config(data: bytes, what: str = "image config") -> ImageConfig:
    config = _decode(data, ImageConfig, what)
    if config.rootfs.type != "layers":
        raise InvalidImage(f"{what}: rootfs.type {config.rootfs.type!r}, expected 'layers'")
    for diff_id in config.rootfs.diff_ids:
        check_digest(diff_id)
    return config


def encode(doc: msgspec.Struct) -> bytes:
    """Canonical bytes for a document this store writes (fields in declaration order)."""
    return msgspec.json.encode(doc)
