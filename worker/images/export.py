"""``image save``: stored images written as one tar, either an OCI image layout (what
``image import`` and skopeo read) or a ``docker save`` archive (what ``docker load`` reads).

Blobs are written as stored, byte for byte, so digests survive the round trip; a docker save
archive names each layer ``<hex>/layer.tar`` and its config ``<hex>.json``, with
``manifest.json`` and ``repositories`` as docker writes them.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from typing import BinaryIO

from worker.images.digest import hex_of
from worker.images.oci import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    MT_OCI_INDEX,
    OCI_LAYOUT_VERSION,
    Descriptor,
    Index,
    encode,
)
from worker.images.store import Image, ImageStore

FORMATS = ("oci", "docker")
_MTIME = 0  # archive entries carry no time of their own: the same images give the same tar


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, _MTIME
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, store: ImageStore, digest: str, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = store.blobs.size(digest), 0o644, _MTIME
    with store.blobs.open(digest) as f:
        tar.addfile(info, f)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
    tar.addfile(info)


def save_images(store: ImageStore, refs: Sequence[str], out: BinaryIO, fmt: str) -> list[Image]:
    """Write the images ``refs`` name (tags named keep just that tag; an id, all its tags)
    to ``out`` as a tar in ``fmt``; returns them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown save format {fmt!r}")
    with store.lock:  # no blob goes away while it is written
        chosen: dict[str, tuple[Image, list[str]]] = {}
        for ref in refs:
            image, tag = store.resolve(ref)
            _, tags = chosen.setdefault(image.id, (image, []))
            for name in ([tag] if tag else list(image.tags)):
                if name not in tags:
                    tags.append(name)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            if fmt == "oci":
                _write_oci(tar, store, list(chosen.values()))
            else:
                _write_docker(tar, store, list(chosen.values()))
        return [image for image, _ in chosen.values()]


def _write_oci(tar: tarfile.TarFile, store: ImageStore,
               images: list[tuple[Image, list[str]]]) -> None:
    _add_bytes(tar, "oci-layout",
               json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}).encode())
    entries: list[Descriptor] = []
    for image, tags in images:
        size = store.blobs.size(image.manifest_digest)
        for tag in tags or [""]:
            notes = {ANNOTATION_CONTAINERD_NAME: tag,
                     ANNOTATION_REF_NAME: tag.rpartition(":")[2]} if tag else None
            entries.append(Descriptor(image.manifest_media_type, image.manifest_digest, size,
                                      annotations=notes))
    _add_bytes(tar, "index.json",
               encode(Index(schema_version=2, media_type=MT_OCI_INDEX, manifests=entries)))
    _add_dir(tar, "blobs")
    _add_dir(tar, "blobs/sha256")
    written: set[str] = set()
    for image, _ in images:
        for desc in (image.manifest.config, *image.manifest.layers):
            if desc.digest not in written:
                written.add(desc.digest)
                _add_blob(tar, store, desc.digest, f"blobs/sha256/{hex_of(desc.digest)}")
        if image.manifest_digest not in written:
            written.add(image.manifest_digest)
            _add_blob(tar, store, image.manifest_digest,
                      f"blobs/sha256/{hex_of(image.manifest_digest)}")


def _write_docker(tar: tarfile.TarFile, store: ImageStore,
                  images: list[tuple[Image, list[str]]]) -> None:
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for image, tags in images:
        config_name = f"{hex_of(image.id)}.json"
        if config_name not in written:
            written.add(config_name)
            _add_blob(tar, store, image.id, config_name)
        layers = []
        for desc in image.manifest.layers:
            name = f"{hex_of(desc.digest)}/layer.tar"
            if name not in written:
                written.add(name)
                _add_dir(tar, hex_of(desc.digest))
                _add_blob(tar, store, desc.digest, name)
            layers.append(name)
        manifest.append({"Config": config_name, "RepoTags": tags or None, "Layers": layers})
        top = hex_of(image.manifest.layers[-1].digest) if image.manifest.layers else ""
        for tag in tags:
            repo, _, label = tag.rpartition(":")
            repositories.setdefault(repo, {})[label] = top
    _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    if repositories:
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())
