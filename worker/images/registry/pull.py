"""Pulling an image from a registry into an ``ImageStore``.

The manifest is read with a size limit and checked against the digest asked for (or the one
the registry announces); an index is narrowed to the wanted platform. Then the config and the
layers the store lacks are downloaded concurrently, each streamed into a partial file in the
store's ingest directory and hashed as it arrives: a blob is renamed into the store only once
its size and digest are right, and more bytes than its descriptor says are refused at once.
A broken transfer is resumed with ``Range`` from what the partial file holds (within the pull,
a few times, and by the next pull of the same blob); a partial file whose content turns out
wrong is deleted. Each layer is judged as unpacking would judge it (as an import does) while
it downloads: its bytes go to a scanner thread as they are written (``scanfeed``), whose hash
of them is the digest checked; a layer already stored is scanned from disk. The image is
recorded only when every layer has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from protocol.errors import ShoalError
from worker.images.digest import digest_bytes, hex_of, is_digest
from worker.images.errors import DigestMismatch, InvalidImage, LayerRejected
from worker.images.layers import LayerRef
from worker.images.oci import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_DOCUMENT_BYTES,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    Descriptor,
    decode_config,
    decode_index,
    decode_manifest,
)
from worker.images.registry.auth import scope_for
from worker.images.registry.errors import RegistryError
from worker.images.registry.names import RemoteName
from worker.images.registry.platform_choice import WantedPlatform, choose_manifest, host_wanted
from worker.images.registry.progress import BlobProgress, ProgressSink, ignore_progress
from worker.images.registry.scanfeed import LayerScan
from worker.images.registry.session import RegistryAccess, RegistrySession
from worker.images.store import Image, ImageStore
from worker.images.unpack import LayerStats
from worker.images.verify import image_total, scan_layer

MANIFEST_ACCEPT = ", ".join((MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST))
CONCURRENT_BLOBS = 4
ATTEMPTS = 4  # transfers of one blob within a pull (the first and three resumptions)
FLUSH_BYTES = 4 * 1024 * 1024  # bytes gathered before one write (and hand-over) in a thread
_INGESTING: weakref.WeakValueDictionary[Path, asyncio.Lock] = weakref.WeakValueDictionary()


@dataclass(frozen=True, slots=True)
class PullResult:
    image: Image
    digest: str  # what the tag named: the index's digest for a multi-platform image
    downloaded: int  # blobs fetched (0: the image was up to date)


class _Partial:
    """A blob being downloaded: its ingest file, the bytes it holds, and either their running
    hash or, for a layer, the scanner they are handed to (whose outer hash is the blob's)."""

    def __init__(self, path: Path, size: int,
                 new_scan: Callable[[], LayerScan] | None = None) -> None:
        self.path = path
        self.size = size
        self.new_scan = new_scan
        self.hasher = hashlib.sha256()
        self.scan = new_scan() if new_scan is not None else None
        self.stats: LayerStats | None = None
        self.have = 0
        self.file = path.open("ab+")
        try:
            self.file.seek(0)
            while chunk := self.file.read(FLUSH_BYTES):
                self._digest(chunk)
                self.have += len(chunk)
            if self.have > size:
                self.restart()
        except BaseException:
            self.abandon()
            raise

    def _digest(self, data: bytes) -> None:
        if self.scan is not None:
            self.scan.put(data)
        else:
            self.hasher.update(data)

    def append(self, data: bytes) -> None:
        self.file.write(data)
        self._digest(data)
        self.have += len(data)

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.hasher = hashlib.sha256()
        if self.scan is not None and self.new_scan is not None:
            self.scan.abort()
            self.scan = self.new_scan()
        self.have = 0

    def finish(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if self.scan is not None:
            self.stats = self.scan.finish()  # its refusal (LayerRejected) propagates
            return self.stats.blob_digest
        return f"sha256:{self.hasher.hexdigest()}"

    def abandon(self) -> None:
        """Stop the scanner and close the file; what it holds stays for a resumption."""
        if self.scan is not None:
            self.scan.abort()
        self.file.close()

    def discard(self) -> None:
        self.abandon()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Puller:
    """Pulls images of one registry into ``store``; use as ``async with``."""

    def __init__(self, store: ImageStore, name: RemoteName, access: RegistryAccess, *,
                 progress: ProgressSink = ignore_progress,
                 concurrency: int = CONCURRENT_BLOBS) -> None:
        self.store = store
        self.name = name
        self.scope = scope_for(name.repository, "pull")
        self.session = RegistrySession(name.api_host, access, connections=concurrency + 2)
        self.progress = progress
        self.limit = asyncio.Semaphore(concurrency)

    async def pull(self, wanted: WantedPlatform | None = None, *,
                   tag: bool = True) -> PullResult:
        """Pull the image (for ``wanted``, default the host's platform); with ``tag`` it gets
        the reference's tag, else it is stored by digest only."""
        async with self.session:
            body, media_type = await self._manifest(self.name.reference)
            pulled_digest = self.name.digest or digest_bytes(body)
            if media_type in INDEX_TYPES:
                entry = choose_manifest(decode_index(body, "manifest list"),
                                        wanted or host_wanted())
                body, media_type = await self._manifest(entry.digest, entry.size)
            if media_type not in MANIFEST_TYPES:
                raise InvalidImage(f"{self.name}: unsupported manifest type {media_type!r}",
                                   details={"media_type": media_type[:200]})
            manifest = decode_manifest(body)
            # The config first (it is small): its diff ids let each layer be scanned in a
            # thread as soon as it lands, while the others still download.
            missing = [d for d in (manifest.config, *manifest.layers)
                       if not self.store.blobs.has(d.digest)]
            await self._fetch(manifest.config)
            config = decode_config(await asyncio.to_thread(
                self.store.blobs.read, manifest.config.digest, MAX_DOCUMENT_BYTES))
            diff_ids = config.rootfs.diff_ids
            if len(diff_ids) != len(manifest.layers):
                raise InvalidImage(f"image {manifest.config.digest}: {len(manifest.layers)} "
                                   f"layers but {len(diff_ids)} diff ids")
            outcomes = await asyncio.gather(
                *(self._fetch_and_scan(LayerRef(d.digest, diff_id), d)
                  for d, diff_id in zip(manifest.layers, diff_ids, strict=True)),
                return_exceptions=True)
            stats: list[LayerStats] = []
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
                stats.append(outcome)
        manifest_desc = Descriptor(media_type, digest_bytes(body), len(body))
        image = await asyncio.to_thread(self._record, body, manifest_desc, stats, tag)
        return PullResult(image, pulled_digest, len(missing))

    async def _fetch(self, desc: Descriptor, layer: LayerRef | None = None) \
            -> LayerStats | None:
        """Store blob ``desc`` unless it is here; for a layer downloaded now, its scan."""
        if self.store.blobs.has(desc.digest):
            self.progress(BlobProgress(desc.digest, "exists", desc.size, desc.size))
            return None
        return await self._blob(desc, layer)

    async def _fetch_and_scan(self, layer: LayerRef, desc: Descriptor) -> LayerStats:
        """Fetch a layer unless stored, judged as unpacking would judge it (while it
        downloads, or from the store); a layer refused for its content is deleted."""
        stats = await self._fetch(desc, layer)
        if stats is not None:
            return stats
        try:
            return await asyncio.to_thread(self._scan, layer)
        except ShoalError:
            await asyncio.to_thread(self.store.blobs.delete, layer.blob)
            raise

    async def _manifest(self, reference: str, size: int | None = None) -> tuple[bytes, str]:
        """A manifest's bytes and media type, bounded and checked against its digest."""
        what = f"manifest {self.name.repository}:{reference}"
        response = await self.session.request(
            "GET", f"/v2/{self.name.repository}/manifests/{reference}", self.scope,
            headers={"Accept": MANIFEST_ACCEPT}, what=f"pull {self.name}")
        try:
            length = response.content_length
            if length is not None and length > MAX_DOCUMENT_BYTES:
                raise InvalidImage(f"{what} is {length} bytes, over the "
                                   f"{MAX_DOCUMENT_BYTES}-byte limit")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
            announced = response.headers.get("Docker-Content-Digest", "")
            media_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
        except aiohttp.ClientError as exc:
            raise RegistryError(f"{what}: {exc}") from exc
        finally:
            response.release()
        if len(body) > MAX_DOCUMENT_BYTES:
            raise InvalidImage(f"{what} is over the {MAX_DOCUMENT_BYTES}-byte limit")
        actual = digest_bytes(body)
        expected = reference if is_digest(reference) else announced if is_digest(announced) \
            else None
        if expected is not None and actual != expected:
            raise DigestMismatch(f"{what}: content has digest {actual}, expected {expected}",
                                 details={"digest": expected, "actual": actual})
        if size is not None and len(body) != size:
            raise DigestMismatch(f"{what}: {len(body)} bytes, the index says {size}",
                                 details={"digest": reference})
        if media_type not in INDEX_TYPES | MANIFEST_TYPES:
            media_type = _sniff_media_type(body) or media_type
        return body, media_type

    async def _blob(self, desc: Descriptor, layer: LayerRef | None) -> LayerStats | None:
        path = self.store.blobs.ingest / f"pull-{hex_of(desc.digest)}"
        # One download per blob per store: a second pull of it (another replica's) waits for
        # the first and then finds the blob stored.
        lock = _INGESTING.setdefault(path, asyncio.Lock())
        async with self.limit, lock:
            if self.store.blobs.has(desc.digest):
                self.progress(BlobProgress(desc.digest, "exists", desc.size, desc.size))
                return None
            return await self._download(desc, path, layer)

    async def _download(self, desc: Descriptor, path: Path,
                        layer: LayerRef | None) -> LayerStats | None:
        self.progress(BlobProgress(desc.digest, "downloading", 0, desc.size))
        limits = self.store.limits
        new_scan = None if layer is None else \
            (lambda: LayerScan(limits, layer.diff_id, desc.digest[7:19]))
        partial = await asyncio.to_thread(_Partial, path, desc.size, new_scan)
        try:
            await self._transfer(desc, partial)
            actual = await asyncio.to_thread(partial.finish)
        except BaseException as exc:
            if isinstance(exc, DigestMismatch | LayerRejected):
                await asyncio.to_thread(partial.discard)  # wrong bytes: never resume them
            else:
                await asyncio.to_thread(partial.abandon)  # kept: the next attempt resumes
            raise
        if actual != desc.digest:
            await asyncio.to_thread(partial.discard)
            raise DigestMismatch(f"blob {desc.digest}: content has digest {actual}",
                                 details={"digest": desc.digest, "actual": actual})
        await asyncio.to_thread(self._adopt, partial.path, desc.digest)
        self.progress(BlobProgress(desc.digest, "done", desc.size, desc.size))
        return partial.stats

    def _adopt(self, path: Path, digest: str) -> None:
        target = self.store.blobs.path(digest)
        os.chmod(path, 0o644)
        os.replace(path, target)

    async def _transfer(self, desc: Descriptor, partial: _Partial) -> None:
        """Fill ``partial`` up to the descriptor's size, resuming after broken transfers."""
        failures: list[str] = []
        attempted = False
        while not attempted or partial.have < desc.size:
            attempted = True
            if len(failures) >= ATTEMPTS:
                raise RegistryError(f"blob {desc.digest}: transfer failed {ATTEMPTS} times "
                                    f"(last: {failures[-1]}); the next pull resumes at byte "
                                    f"{partial.have}", details={"digest": desc.digest})
            start = partial.have
            headers = {"Range": f"bytes={start}-"} if start else {}
            if start:
                self.progress(BlobProgress(desc.digest, "resuming", start, desc.size))
            response = await self.session.request(
                "GET", f"/v2/{self.name.repository}/blobs/{desc.digest}", self.scope,
                headers=headers, ok=(200, 206), what=f"pull {self.name} blob {desc.digest}")
            try:
                if start and response.status == 200:
                    await asyncio.to_thread(partial.restart)  # the registry ignored the range
                elif start and not response.headers.get("Content-Range", "").startswith(
                        f"bytes {start}-"):
                    raise RegistryError(f"blob {desc.digest}: asked for bytes {start}- and "
                                        f"got {response.headers.get('Content-Range', '')!r}")
                await self._receive(desc, partial, response)
                if partial.have < desc.size:
                    failures.append(f"the connection ended at byte {partial.have} of "
                                    f"{desc.size}")
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    TimeoutError) as exc:
                failures.append(str(exc) or type(exc).__name__)
            finally:
                response.release()

    async def _receive(self, desc: Descriptor, partial: _Partial,
                       response: aiohttp.ClientResponse) -> None:
        pending: list[bytes] = []
        pending_bytes = 0
        received = partial.have  # with the batches not yet written
        # One batch is written (and handed to the scanner) in a thread while the next one
        # arrives: awaiting each write before reading on left the connection idle for a
        # thread's round trip per batch, which on a loaded machine was most of a pull's
        # waiting. The next batch waits for the one before, so the file grows in order.
        writing: asyncio.Future[None] | None = None
        try:
            while True:
                # Each chunk as the HTTP parser made it: read(n) and readany() join what is
                # buffered into new bytes, a copy of every byte of the blob.
                chunk, chunk_end = await response.content.readchunk()
                if not chunk:
                    if chunk_end:  # an HTTP/1.1 chunk's end, not the body's
                        continue
                    break
                if received + len(chunk) > desc.size:
                    raise DigestMismatch(f"blob {desc.digest}: the registry sent more than "
                                         f"the {desc.size} bytes its descriptor says",
                                         details={"digest": desc.digest})
                pending.append(chunk)
                pending_bytes += len(chunk)
                received += len(chunk)
                if pending_bytes >= FLUSH_BYTES:
                    if writing is not None:
                        await writing
                    batch, pending, pending_bytes = pending, [], 0
                    writing = asyncio.ensure_future(
                        asyncio.to_thread(_append_all, partial, batch))
                    self.progress(BlobProgress(desc.digest, "downloading", partial.have,
                                               desc.size))
        finally:
            # What arrived before a break is kept: the resumption starts after it.
            if writing is not None:
                await writing
            if pending:
                batch, pending = pending, []
                await asyncio.to_thread(_append_all, partial, batch)
        self.progress(BlobProgress(desc.digest, "verifying", partial.have, desc.size))

    def _scan(self, layer: LayerRef) -> LayerStats:
        # The blob's digest was checked as it arrived (or when it was first stored): only the
        # entries and the diff id are left to judge.
        with self.store.blobs.open(layer.blob) as blob:
            return scan_layer(blob, limits=self.store.limits, diff_id=layer.diff_id)

    def _record(self, body: bytes, manifest: Descriptor, stats: list[LayerStats],
                tagged: bool) -> Image:
        """Bound the image's unpacked size, store the manifest, record the image (under the
        pulled tag when ``tagged``)."""
        store = self.store
        total = 0
        for layer in stats:
            total = image_total(total, layer, store.limits)
        store.blobs.put_bytes(body, manifest.digest)
        tag = self.name.local_tag if tagged else None
        return store.add(manifest, [tag] if tag else [])


def _append_all(partial: _Partial, chunks: list[bytes]) -> None:
    for chunk in chunks:
        partial.append(chunk)


def _sniff_media_type(body: bytes) -> str | None:
    """A manifest served without a usable Content-Type: its own ``mediaType`` field."""
    import msgspec

    class _Typed(msgspec.Struct):
        mediaType: str = ""
        manifests: list[object] | None = None

    try:
        typed = msgspec.json.decode(body, type=_Typed)
    except msgspec.DecodeError:
        return None
    if typed.mediaType:
        return typed.mediaType
    return MT_OCI_INDEX if typed.manifests is not None else MT_OCI_MANIFEST
