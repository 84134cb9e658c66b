"""Small images as registry documents, built by the registry tests: a manifest, its config and
one gzipped layer holding ``payload`` (random bytes make a layer that does not compress), and
the raw HTTP to put them (and an index of several) into a registry; and how many blob downloads
a registry's log shows."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.helpers.image_layers import E, diff_id, gz, make_tar
from worker.images.digest import digest_bytes
from worker.images.oci import (
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    RootFS,
    encode,
)


@dataclass(frozen=True)
class RegistryImage:
    manifest: bytes
    config: bytes
    layer: bytes
    platform: Platform

    @property
    def digest(self) -> str:
        return digest_bytes(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        return {digest_bytes(b): b for b in (self.config, self.layer)}

    @property
    def entry(self) -> Descriptor:
        return Descriptor(MT_OCI_MANIFEST, self.digest, len(self.manifest),
                          platform=self.platform)


def small_image(payload: bytes, arch: str = "amd64", variant: str | None = None,
                extra: tuple[E, ...] = ()) -> RegistryImage:
    tar = make_tar([E("etc", "dir"), E("etc/arch", data=arch.encode()),
                    E("payload", data=payload), *extra])
    layer = gz(tar)
    config = encode(ImageConfig(architecture=arch, os="linux", variant=variant,
                                rootfs=RootFS("layers", [diff_id(tar)])))
    manifest = encode(Manifest(
        schema_version=2, media_type=MT_OCI_MANIFEST,
        config=Descriptor(MT_OCI_CONFIG, digest_bytes(config), len(config)),
        layers=[Descriptor(MT_OCI_LAYER_GZIP, digest_bytes(layer), len(layer))]))
    return RegistryImage(manifest, config, layer, Platform(arch, "linux", variant))


def index_of(images: list[RegistryImage]) -> bytes:
    return encode(Index(schema_version=2, media_type=MT_OCI_INDEX,
                        manifests=[image.entry for image in images]))


def _session(ca_pem: str) -> aiohttp.ClientSession:
    if not ca_pem:
        return aiohttp.ClientSession()
    context = ssl.create_default_context(cadata=ca_pem)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


async def put_image(base: str, repository: str, image: RegistryImage, tag: str, *,
                    ca_pem: str = "") -> None:
    """Upload an image's blobs (monolithic) and its manifest under ``tag`` (no auth; over
    TLS trusting ``ca_pem``)."""
    async with _session(ca_pem) as http:
        for digest, data in image.blobs.items():
            async with http.post(f"{base}/v2/{repository}/blobs/uploads/") as started:
                assert started.status == 202, await started.text()
                location = started.headers["Location"]
            url = location if location.startswith("http") else base + location
            separator = "&" if "?" in url else "?"
            async with http.put(f"{url}{separator}digest={digest}", data=data,
                                headers={"Content-Type": "application/octet-stream"}) as put:
                assert put.status == 201, await put.text()
        await put_manifest(http, base, repository, tag, image.manifest, MT_OCI_MANIFEST)


async def put_manifest(http: aiohttp.ClientSession, base: str, repository: str,
                       reference: str, body: bytes, media_type: str) -> None:
    async with http.put(f"{base}/v2/{repository}/manifests/{reference}", data=body,
                        headers={"Content-Type": media_type}) as put:
        assert put.status == 201, await put.text()


async def put_index(base: str, repository: str, images: list[RegistryImage], tag: str, *,
                    ca_pem: str = "") -> str:
    """Upload ``images`` by digest and an OCI index of them under ``tag``; its digest."""
    for image in images:
        await put_image(base, repository, image, image.digest, ca_pem=ca_pem)
    body = index_of(images)
    async with _session(ca_pem) as http:
        await put_manifest(http, base, repository, tag, body, MT_OCI_INDEX)
    return digest_bytes(body)


def blob_gets(registry_log: Path, repository: str) -> int:
    """Blob downloads the registry answered for ``repository`` (one log line per request)."""
    pattern = re.compile(r'msg="response completed.*http\.request\.method=GET .*'
                         rf'http\.request\.uri="?/v2/{re.escape(repository)}/blobs/sha256:')
    return sum(1 for line in registry_log.read_text().splitlines() if pattern.search(line))
