"""The image store: an OCI image layout on disk plus tags, inspect, removal and garbage
collection.

Layout under ``root``: ``oci/`` is a plain OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/``) that skopeo or umoci can read; ``ingest/`` holds blobs being written;
``layers/`` the unpacked layers (see ``layers``); ``build-cache/`` the records of Dockerfile
builds' layer cache (see ``buildcache``), whose blobs ``gc`` keeps until ``prune``.
``index.json`` is the only mutable record: one manifest
descriptor per tag, annotated ``org.opencontainers.image.ref.name=<name:tag>``, or one without
annotation for an untagged image. It is rewritten atomically (temp file, rename).

An image's id is its config digest, as in Docker. All methods block and are thread-safe (one
re-entrant lock per store); callers on an event loop run them with ``asyncio.to_thread``.
One process owns a store directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from worker.images.blobs import BlobStore
from worker.images.buildcache import BuildCache
from worker.images.digest import chain_ids, is_digest
from worker.images.errors import ImageInUse, ImageNotFound, InvalidImage, InvalidReference
from worker.images.layers import LayerRef, LayerStore
from worker.images.oci import (
    ANNOTATION_REF_NAME,
    MAX_DOCUMENT_BYTES,
    MT_OCI_INDEX,
    OCI_LAYOUT_VERSION,
    ContainerDefaults,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    decode_config,
    decode_index,
    decode_manifest,
    encode,
)
from worker.images.reference import parse_reference
from worker.images.tarsafety import LayerLimits
from worker.images.unpack import Form

_HEX_PREFIX = re.compile(r"(?:sha256:)?[0-9a-f]{1,64}")


@dataclass(frozen=True, slots=True)
class Image:
    """One image as stored: documents, tags and the numbers ``shoal images`` shows."""

    id: str
    manifest_digest: str
    manifest_media_type: str
    manifest: Manifest
    config: ImageConfig
    tags: tuple[str, ...]
    size: int  # bytes stored: config plus layer blobs as stored (compressed)

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]

    @property
    def layers(self) -> list[LayerRef]:
        diff_ids = self.config.rootfs.diff_ids
        return [LayerRef(d.digest, diff_id)
                for d, diff_id in zip(self.manifest.layers, diff_ids, strict=True)]

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.config.rootfs.diff_ids)

    @property
    def defaults(self) -> ContainerDefaults:
        return ContainerDefaults.from_config(self.config.config)

    @property
    def platform(self) -> str:
        variant = f"/{self.config.variant}" if self.config.variant else ""
        return f"{self.config.os}/{self.config.architecture}{variant}"

    def inspect(self) -> dict[str, object]:
        """Docker-shaped ``image inspect`` data (JSON-ready)."""
        d = self.defaults
        return {
            "Id": self.id,
            "RepoTags": list(self.tags),
            "ManifestDigest": self.manifest_digest,
            "Created": self.config.created or "",
            "Author": self.config.author or "",
            "Os": self.config.os,
            "Architecture": self.config.architecture,
            "Variant": self.config.variant or "",
            "Size": self.size,
            "Config": {
                "Entrypoint": list(d.entrypoint), "Cmd": list(d.cmd), "Env": list(d.env),
                "WorkingDir": d.working_dir, "User": d.user,
                "ExposedPorts": {p: {} for p in d.exposed_ports}, "StopSignal": d.stop_signal,
                "Labels": dict(d.labels), "Volumes": {v: {} for v in d.volumes},
                **({"Healthcheck": {
                    "Test": d.healthcheck.test, "Interval": int(d.healthcheck.interval * 1e9),
                    "Timeout": int(d.healthcheck.timeout * 1e9),
                    "StartPeriod": int(d.healthcheck.start_period * 1e9),
                    "StartInterval": int(d.healthcheck.start_interval * 1e9),
                    "Retries": d.healthcheck.retries}} if d.healthcheck else {}),
            },
            "RootFS": {"Type": "layers", "Layers": list(self.config.rootfs.diff_ids)},
        }


@dataclass(slots=True)
class RemoveResult:
    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # image ids


@dataclass(slots=True)
class GcResult:
    blobs: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    bytes: int = 0  # what the deleted blobs held


@dataclass(slots=True)
class PruneResult:
    deleted: list[str] = field(default_factory=list)  # image ids
    untagged: list[str] = field(default_factory=list)
    cache_records: int = 0
    reclaimed: int = 0  # bytes of blobs deleted


class ImageStore:
    def __init__(self, root: Path, *, limits: LayerLimits | None = None) -> None:
        self.root = root
        self.layout = root / "oci"
        self.layout.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.layout, root / "ingest")
        self.build_cache = BuildCache(root / "build-cache")
        self.limits = limits or LayerLimits()
        self.lock = threading.RLock()
        self._layer_stores: dict[Form, LayerStore] = {}
        # Storage drivers register what their containers still mount, so that removing an
        # image never pulls unpacked layers from under a live rootfs.
        self.chain_guards: list[Callable[[], Collection[str]]] = []
        # Builds register the blobs their unfinished stages hold (no image names them yet).
        self.blob_guards: list[Callable[[], Collection[str]]] = []
        marker = self.layout / "oci-layout"
        if not marker.exists():
            self._atomic_write(marker, b'{"imageLayoutVersion":"%s"}' % OCI_LAYOUT_VERSION.encode())
        if not (self.layout / "index.json").exists():
            self._write_index([])

    # --- files -------------------------------------------------------------------------------
    def _atomic_write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _entries(self) -> list[Descriptor]:
        data = (self.layout / "index.json").read_bytes()
        return list(decode_index(data).manifests)

    def _write_index(self, entries: Sequence[Descriptor]) -> None:
        index = Index(schema_version=2, media_type=MT_OCI_INDEX, manifests=list(entries))
        self._atomic_write(self.layout / "index.json", encode(index))

    def layer_store(self, form: Form) -> LayerStore:
        with self.lock:
            store = self._layer_stores.get(form)
            if store is None:
                store = LayerStore(self.root / "layers", self.blobs, form, self.limits)
                self._layer_stores[form] = store
            return store

    def recover(self) -> int:
        """Clean what a crash left: ingest files, index temp files, partial unpacks; returns
        how many partial blobs (ingest files) it removed."""
        with self.lock:
            partial = self.blobs.recover()
            for entry in os.scandir(self.layout):
                if entry.name.startswith(".index.json.") or entry.name.startswith(".oci-layout."):
                    os.unlink(entry.path)
            for form in Form:
                if (self.root / "layers" / form.value).is_dir():
                    self.layer_store(form).recover()
            return partial

    # --- reading -----------------------------------------------------------------------------
    def _load(self, desc: Descriptor, tags: tuple[str, ...]) -> Image:
        manifest = decode_manifest(self.blobs.read(desc.digest, MAX_DOCUMENT_BYTES))
        config = decode_config(self.blobs.read(manifest.config.digest, MAX_DOCUMENT_BYTES))
        size = manifest.config.size + sum(layer.size for layer in manifest.layers)
        return Image(manifest.config.digest, desc.digest, desc.media_type, manifest, config,
                     tags, size)

    def _by_manifest(self) -> dict[str, tuple[Descriptor, list[str]]]:
        images: dict[str, tuple[Descriptor, list[str]]] = {}
        for desc in self._entries():
            tag = (desc.annotations or {}).get(ANNOTATION_REF_NAME)
            _, tags = images.setdefault(desc.digest, (desc, []))
            if tag:
                tags.append(tag)
        return images

    def images(self) -> list[Image]:
        with self.lock:
            return [self._load(desc, tuple(sorted(tags)))
                    for desc, tags in self._by_manifest().values()]

    def __iter__(self) -> Iterator[Image]:
        return iter(self.images())

    def get(self, ref: str) -> Image:
        """An image by ``name[:tag]``, ``name@digest``, full or short id, or manifest digest."""
        with self.lock:
            return self._resolve(ref)[0]

    def resolve(self, text: str) -> tuple[Image, str | None]:
        """The image ``text`` names and, if it named a tag, that tag."""
        with self.lock:
            return self._resolve(text)

    def _resolve(self, text: str) -> tuple[Image, str | None]:
        """The image and, if ``text`` named a tag, that tag."""
        images = self.images()
        full = text if text.startswith("sha256:") else f"sha256:{text}"
        if is_digest(full):
            for image in images:
                if full in (image.id, image.manifest_digest):
                    return image, None
        bad_ref: InvalidReference | None = None
        try:
            ref = parse_reference(text)
        except InvalidReference as exc:
            bad_ref = exc
        else:
            for image in images:
                if ref.digest is not None and ref.digest == image.manifest_digest:
                    return image, None
                if ref.digest is None and ref.tagged in image.tags:
                    return image, ref.tagged
        if _HEX_PREFIX.fullmatch(text):
            prefix = full
            found = [image for image in images if image.id.startswith(prefix)]
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                raise ImageNotFound(f"{text!r} matches {len(found)} images; give more of the id",
                                    details={"reference": text})
        if bad_ref is not None:
            raise bad_ref
        raise ImageNotFound(f"no such image: {text}", details={"reference": text})

    # --- writing -----------------------------------------------------------------------------
    def add(self, manifest: Descriptor, tags: Sequence[str]) -> Image:
        """Record an image whose blobs are all stored, under ``tags`` (moved from any other
        image, as ``docker tag`` does). Returns it."""
        with self.lock:
            image = self._load(manifest, ())
            self._check_blobs(image)
            if len(image.config.rootfs.diff_ids) != len(image.manifest.layers):
                raise InvalidImage(f"image {image.short_id}: {len(image.manifest.layers)} layers "
                                   f"but {len(image.config.rootfs.diff_ids)} diff ids")
            normal = [parse_reference(t).tagged for t in tags]
            entries = self._untag(self._entries(), set(normal))
            entries = [e for e in entries
                       if not (e.digest == manifest.digest and not e.annotations)]
            have = {(e.annotations or {}).get(ANNOTATION_REF_NAME) for e in entries
                    if e.digest == manifest.digest}
            base = Descriptor(manifest.media_type, manifest.digest, manifest.size)
            for tag in normal:
                if tag not in have:
                    entries.append(Descriptor(base.media_type, base.digest, base.size,
                                              annotations={ANNOTATION_REF_NAME: tag}))
            if not any(e.digest == manifest.digest for e in entries):
                entries.append(base)
            self._write_index(entries)
            return self._resolve(manifest.digest)[0]

    def _check_blobs(self, image: Image) -> None:
        for desc in (image.manifest.config, *image.manifest.layers):
            if not self.blobs.has(desc.digest):
                raise InvalidImage(f"image {image.short_id}: blob {desc.digest} is missing")

    @staticmethod
    def _untag(entries: list[Descriptor], tags: set[str]) -> list[Descriptor]:
        """Drop ``tags``; an image left with no tag stays, as one untagged entry."""
        kept = [e for e in entries if (e.annotations or {}).get(ANNOTATION_REF_NAME) not in tags]
        present = {e.digest for e in kept}
        for e in entries:
            if e.digest not in present:
                kept.append(Descriptor(e.media_type, e.digest, e.size))
                present.add(e.digest)
        return kept

    @contextlib.contextmanager
    def undo_on_error(self) -> Iterator[None]:
        """Hold the store for a change of several steps (an import and its checks): if the body
        raises, ``index.json`` is put back as it was and the blobs it added are collected, so a
        refused change leaves nothing behind."""
        with self.lock:
            before = (self.layout / "index.json").read_bytes()
            try:
                yield
            except BaseException:
                self._atomic_write(self.layout / "index.json", before)
                self.gc()
                raise

    def tag(self, source: str, target: str) -> Image:
        with self.lock:
            image = self._resolve(source)[0]
            desc = Descriptor(image.manifest_media_type, image.manifest_digest,
                              self.blobs.size(image.manifest_digest))
            return self.add(desc, [target])

    def remove(self, ref: str, *, force: bool = False,
               in_use: Collection[str] = ()) -> RemoveResult:
        """``docker rmi``: untag, and delete the image once no tag is left.

        ``in_use`` are the image ids that containers use: such an image is never deleted (with
        ``force`` its last tag can still be removed, leaving it untagged). An image with several
        tags removed by id needs ``force``. Unreferenced blobs are collected afterwards.
        """
        with self.lock:
            image, tag = self._resolve(ref)
            result = RemoveResult()
            entries = self._entries()
            busy = image.id in in_use
            if tag is not None and len(image.tags) > 1:
                self._write_index(self._untag(entries, {tag}))
                result.untagged.append(tag)
                return result
            if tag is None and len(image.tags) > 1 and not force:
                raise ImageInUse(f"image {image.short_id} has tags {', '.join(image.tags)}; "
                                 "remove them by name or use force",
                                 details={"image": image.id})
            if busy:
                if not force or tag is None:
                    raise ImageInUse(f"image {image.short_id} is used by a container",
                                     details={"image": image.id})
                self._write_index(self._untag(entries, {tag}))
                result.untagged.append(tag)
                return result
            self._write_index([e for e in entries if e.digest != image.manifest_digest])
            result.untagged.extend(image.tags)
            result.deleted.append(image.id)
            self.gc()
            return result

    def gc(self, keep_chains: Collection[str] = ()) -> GcResult:
        """Delete blobs and unpacked layers that no image references.

        ``keep_chains`` and the registered ``chain_guards`` protect unpacked layers that
        storage drivers still use.
        """
        with self.lock:
            referenced: set[str] = set(self.build_cache.blobs())
            for blob_guard in self.blob_guards:
                referenced.update(blob_guard())
            chains: set[str] = set(keep_chains)
            for guard in self.chain_guards:
                chains.update(guard())
            for image in self.images():
                referenced.add(image.manifest_digest)
                referenced.add(image.id)
                referenced.update(d.digest for d in image.manifest.layers)
                chains.update(image.chain_ids)
            result = GcResult()
            for digest in list(self.blobs.digests()):
                if digest in referenced:
                    continue
                size = self.blobs.path(digest).stat().st_size
                if self.blobs.delete(digest):
                    result.blobs.append(digest)
                    result.bytes += size
            for form in Form:
                if (self.root / "layers" / form.value).is_dir():
                    result.chains.extend(self.layer_store(form).prune(chains))
            return result

    def prune(self, *, all_images: bool = False, in_use: Collection[str] = ()) -> PruneResult:
        """``docker image prune``: delete the untagged images (with ``all_images``, every
        image) that no container uses, clear the build cache, and collect the blobs and
        unpacked layers nothing references any more."""
        with self.lock:
            result = PruneResult()
            entries = self._entries()
            doomed = {image.manifest_digest: image for image in self.images()
                      if (all_images or not image.tags) and image.id not in in_use}
            if doomed:
                self._write_index([e for e in entries if e.digest not in doomed])
            for image in doomed.values():
                result.untagged.extend(image.tags)
                result.deleted.append(image.id)
            result.cache_records = self.build_cache.clear()
            result.reclaimed = self.gc().bytes
            return result
