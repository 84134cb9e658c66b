"""Pushing a stored image to a registry.

Each blob (layers, then the config) is first asked for with ``HEAD``: one the repository has
is skipped. Otherwise, when another repository of the same registry is known to hold it (an
image in the store tagged from there), a cross-repository mount is asked for
(``POST uploads/?mount=…&from=…``), which costs no transfer; a registry that declines answers
with an upload session instead. Uploads are monolithic (one ``PUT`` with the whole blob) or,
given ``chunk_size``, a ``PATCH`` per chunk and a closing ``PUT``. The manifest goes last,
byte for byte as stored, so the pushed image keeps its digest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from yarl import URL

from worker.images.oci import MAX_DOCUMENT_BYTES, Descriptor
from worker.images.registry.auth import scope_for
from worker.images.registry.errors import RegistryError
from worker.images.registry.names import RemoteName, split_domain
from worker.images.registry.progress import BlobProgress, ProgressSink, ignore_progress
from worker.images.registry.session import RegistryAccess, RegistrySession
from worker.images.store import Image, ImageStore

CONCURRENT_BLOBS = 4


@dataclass(frozen=True, slots=True)
class PushResult:
    digest: str
    size: int  # of the manifest
    uploaded: int  # blobs sent (mounted and existing ones are not)
    mounted: int


class Pusher:
    """Pushes ``image`` to ``name`` (which carries the tag); use ``push`` once."""

    def __init__(self, store: ImageStore, image: Image, name: RemoteName,
                 access: RegistryAccess, *, progress: ProgressSink = ignore_progress,
                 chunk_size: int = 0, concurrency: int = CONCURRENT_BLOBS) -> None:
        self.store = store
        self.image = image
        self.name = name
        self.scope = scope_for(name.repository, "pull,push")
        self.session = RegistrySession(name.api_host, access, connections=concurrency + 2)
        self.progress = progress
        self.chunk_size = chunk_size
        self.limit = asyncio.Semaphore(concurrency)
        self.mount_sources = self._mount_sources()
        self.uploaded = 0
        self.mounted = 0

    def _mount_sources(self) -> list[str]:
        """Other repositories of this registry whose images the store holds: a blob pushed
        here may be mounted from them."""
        sources: list[str] = []
        for image in self.store.images():
            for tag in image.tags:
                domain, repository = split_domain(tag.rpartition(":")[0])
                if domain == self.name.domain and repository != self.name.repository and \
                        repository not in sources:
                    sources.append(repository)
        return sources

    async def push(self) -> PushResult:
        manifest = self.image.manifest
        blobs = [*manifest.layers, manifest.config]
        async with self.session:
            outcomes = await asyncio.gather(*(self._blob(d) for d in blobs),
                                            return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            body = await asyncio.to_thread(self.store.blobs.read, self.image.manifest_digest,
                                           MAX_DOCUMENT_BYTES)
            tag = self.name.tag or self.name.digest or "latest"
            response = await self.session.request(
                "PUT", f"/v2/{self.name.repository}/manifests/{tag}", self.scope,
                headers={"Content-Type": self.image.manifest_media_type}, data=body,
                ok=(201, 200), what=f"push {self.name} manifest")
            announced = response.headers.get("Docker-Content-Digest", "")
            response.release()
        if announced and announced != self.image.manifest_digest:
            raise RegistryError(f"push {self.name}: the registry stored the manifest as "
                                f"{announced}, not {self.image.manifest_digest}")
        return PushResult(self.image.manifest_digest, len(body), self.uploaded, self.mounted)

    async def _blob(self, desc: Descriptor) -> None:
        async with self.limit:
            path = f"/v2/{self.name.repository}/blobs/{desc.digest}"
            head = await self.session.request("HEAD", path, self.scope, ok=(200, 404),
                                              what=f"push {self.name}")
            head.release()
            if head.status == 200:
                self.progress(BlobProgress(desc.digest, "exists", desc.size, desc.size))
                return
            location = await self._start_upload(desc)
            if location is None:
                self.mounted += 1
                self.progress(BlobProgress(desc.digest, "mounted", desc.size, desc.size))
                return
            self.progress(BlobProgress(desc.digest, "uploading", 0, desc.size))
            if self.chunk_size > 0:
                await self._upload_chunked(desc, location)
            else:
                await self._upload_monolithic(desc, location)
            self.uploaded += 1
            self.progress(BlobProgress(desc.digest, "pushed", desc.size, desc.size))

    async def _start_upload(self, desc: Descriptor) -> URL | None:
        """An upload session's URL; None when the blob was mounted from another repository."""
        uploads = f"/v2/{self.name.repository}/blobs/uploads/"
        for source in self.mount_sources[:3]:
            response = await self.session.request(
                "POST", self.session.url(uploads).with_query(mount=desc.digest, **{"from": source}),
                scope_for(self.name.repository, "pull,push") + " " +
                scope_for(source, "pull"), ok=(201, 202), what=f"push {self.name} mount")
            response.release()
            if response.status == 201:
                return None
            return self._location(response.headers.get("Location", ""))
        response = await self.session.request("POST", uploads, self.scope, ok=(202,),
                                              what=f"push {self.name} upload")
        response.release()
        return self._location(response.headers.get("Location", ""))

    def _location(self, location: str) -> URL:
        if not location:
            raise RegistryError(f"push {self.name}: the registry gave no upload location")
        return self.session.base.join(URL(location))

    async def _upload_monolithic(self, desc: Descriptor, location: URL) -> None:
        opened: list[BinaryIO] = []

        def body() -> BinaryIO:
            blob = self.store.blobs.open(desc.digest)
            opened.append(blob)
            return blob

        try:
            response = await self.session.request(
                "PUT", location.update_query(digest=desc.digest), self.scope,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(desc.size)},
                body_factory=body, ok=(201, 204), what=f"push {self.name} blob {desc.digest}")
            response.release()
        finally:
            for blob in opened:
                blob.close()

    async def _upload_chunked(self, desc: Descriptor, location: URL) -> None:
        blob = await asyncio.to_thread(self.store.blobs.open, desc.digest)
        try:
            offset = 0
            while offset < desc.size:
                chunk = await asyncio.to_thread(blob.read, self.chunk_size)
                if not chunk:
                    raise RegistryError(f"blob {desc.digest} is shorter than its descriptor")
                end = offset + len(chunk) - 1
                response = await self.session.request(
                    "PATCH", location, self.scope, data=chunk,
                    body_factory=_constant(chunk),
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{end}",
                             "Content-Length": str(len(chunk))},
                    ok=(202,), what=f"push {self.name} blob {desc.digest}")
                response.release()
                location = self._location(response.headers.get("Location", ""))
                offset = end + 1
                self.progress(BlobProgress(desc.digest, "uploading", offset, desc.size))
            response = await self.session.request(
                "PUT", location.update_query(digest=desc.digest), self.scope,
                headers={"Content-Length": "0"}, ok=(201, 204),
                what=f"push {self.name} blob {desc.digest}")
            response.release()
        finally:
            blob.close()


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data
