"""The worker's image fetcher against the scheduler's image service, over real channels (tcp
loopback): blobs arrive verified, each once even when many ask at the same time, and a corrupt
or hostile blob is refused with nothing of it kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import channels
from protocol.errors import NotFound, Timeout
from protocol.messages import FetchBlob, Message
from scheduler.cluster.images import ClusterImages
from tests.helpers.bounded_run import run
from tests.helpers.image_layers import E, gz, make_tar
from worker.images import DigestMismatch, ImageNotFound, ImageStore, LayerRejected
from worker.images.digest import digest_bytes
from worker.images.fetch import ImageFetcher
from worker.images.oci import (
    MT_OCI_CONFIG,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    RootFS,
    encode,
)
from worker.images.testimage import import_test_image

Handler = Callable[[Message], Awaitable[Message | None]]


@contextlib.asynccontextmanager
async def served(images: ClusterImages, handler: Handler | None = None
                 ) -> AsyncIterator[channels.Connection]:
    """``images`` (or ``handler``) served on a tcp listener, and a connection to it."""
    async with await channels.listen("tcp://127.0.0.1:0") as listener:
        server = asyncio.create_task(channels.serve(listener.receiver,
                                                    handler or images.handle))
        try:
            async with await channels.connect(listener.address) as conn:
                yield conn
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)


@pytest.fixture
def scheduler_images(tmp_path: Path) -> ClusterImages:
    images = ClusterImages(tmp_path / "scheduler")
    import_test_image(images.store)
    return images


def blobs_of(store: ImageStore, ref: str) -> list[str]:
    image = store.get(ref)
    return [image.manifest_digest, image.id, *(layer.digest for layer in image.manifest.layers)]


def test_fetches_a_missing_image_with_every_blob_verified(
        scheduler_images: ClusterImages, tmp_path: Path) -> None:
    worker = ImageStore(tmp_path / "worker")
    fetcher = ImageFetcher(worker)

    async def body() -> None:
        async with served(scheduler_images) as conn:
            image = await fetcher.ensure("busybox", conn.sender)
            again = await fetcher.ensure("busybox:latest", conn.sender)
            assert again.id == image.id

    run(body)
    source = scheduler_images.store.get("busybox")
    image = worker.get("busybox:latest")
    assert (image.id, image.manifest_digest, image.tags) == \
        (source.id, source.manifest_digest, ("busybox:latest",))
    expected = blobs_of(scheduler_images.store, "busybox")
    assert sorted(worker.blobs.digests()) == sorted(expected)
    for digest in expected:
        assert worker.blobs.path(digest).read_bytes() == \
            scheduler_images.store.blobs.path(digest).read_bytes()
    # Once here, a second ensure asks the scheduler for nothing.
    assert scheduler_images.served == dict.fromkeys(expected, 1)


def test_concurrent_requests_share_one_download_per_blob(
        scheduler_images: ClusterImages, tmp_path: Path) -> None:
    worker = ImageStore(tmp_path / "worker")
    fetcher = ImageFetcher(worker)

    async def body() -> None:
        async with served(scheduler_images) as conn:
            images = await asyncio.gather(*(fetcher.ensure(ref, conn.sender) for ref in
                                            ["busybox", "busybox:latest"] * 4))
            assert len({image.id for image in images}) == 1

    run(body)
    expected = blobs_of(scheduler_images.store, "busybox")
    assert scheduler_images.served == dict.fromkeys(expected, 1)
    assert len(fetcher._downloads) == 0


def test_a_corrupt_blob_is_refused_and_nothing_of_it_kept(
        scheduler_images: ClusterImages, tmp_path: Path) -> None:
    source = scheduler_images.store.get("busybox")
    layer = source.manifest.layers[0].digest
    path = scheduler_images.store.blobs.path(layer)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    worker = ImageStore(tmp_path / "worker")

    async def body() -> None:
        async with served(scheduler_images) as conn:
            with pytest.raises(DigestMismatch) as caught:
                await ImageFetcher(worker).ensure("busybox", conn.sender)
            message = str(caught.value)
            assert "cannot fetch image busybox from the scheduler" in message
            assert f"expected {layer}" in message

    run(body)
    assert not worker.blobs.has(layer)
    assert list((tmp_path / "worker" / "ingest").iterdir()) == []
    with pytest.raises(ImageNotFound):
        worker.get("busybox")


def test_a_truncated_stream_is_refused(scheduler_images: ClusterImages, tmp_path: Path) -> None:
    source = scheduler_images.store.get("busybox")
    layer = source.manifest.layers[-1]
    path = scheduler_images.store.blobs.path(layer.digest)
    path.write_bytes(path.read_bytes()[: layer.size // 2])
    worker = ImageStore(tmp_path / "worker")

    async def body() -> None:
        async with served(scheduler_images) as conn:
            with pytest.raises(DigestMismatch, match="descriptor says"):
                await ImageFetcher(worker).ensure("busybox", conn.sender)

    run(body)
    assert not worker.blobs.has(layer.digest)


def test_a_hostile_layer_is_refused_after_fetching(tmp_path: Path) -> None:
    """A store that took a layer without scanning it cannot pass it on: the worker scans it."""
    images = ClusterImages(tmp_path / "scheduler")
    tar = make_tar([E("../escape", data=b"x")])
    layer = gz(tar)
    config = encode(ImageConfig(architecture="amd64", os="linux",
                                rootfs=RootFS("layers", [digest_bytes(tar)])))
    manifest = encode(Manifest(
        schema_version=2, media_type=MT_OCI_MANIFEST,
        config=Descriptor(MT_OCI_CONFIG, digest_bytes(config), len(config)),
        layers=[Descriptor(MT_OCI_LAYER_GZIP, digest_bytes(layer), len(layer))]))
    for blob in (config, manifest, layer):
        images.store.blobs.put_bytes(blob, digest_bytes(blob))
    images.store.add(Descriptor(MT_OCI_MANIFEST, digest_bytes(manifest), len(manifest)),
                     ["evil:latest"])
    worker = ImageStore(tmp_path / "worker")

    async def body() -> None:
        async with served(images) as conn:
            with pytest.raises(LayerRejected, match="escape"):
                await ImageFetcher(worker).ensure("evil", conn.sender)

    run(body)
    assert not worker.blobs.has(digest_bytes(layer))
    assert worker.images() == []


def test_unknown_images_and_blobs_are_refused(scheduler_images: ClusterImages,
                                              tmp_path: Path) -> None:
    worker = ImageStore(tmp_path / "worker")
    missing = "sha256:" + "0" * 64

    async def body() -> None:
        async with served(scheduler_images) as conn:
            with pytest.raises(ImageNotFound):
                await ImageFetcher(worker).ensure("nosuch:1", conn.sender)
            # The blob stream itself is aborted with the refusal, so a reader never hangs.
            writer, reader = channels.byte_pipe()

            def fetch(reply: channels.Sender) -> Message:
                return FetchBlob(digest=missing, into=writer, reply=reply)

            with pytest.raises(NotFound, match="no blob"):
                await channels.request(conn.sender, fetch)
            with pytest.raises(NotFound):
                await reader.read()

    run(body)
    assert scheduler_images.served == {}


def test_a_stalled_blob_stream_fails_the_fetch(scheduler_images: ClusterImages,
                                               tmp_path: Path) -> None:
    """A scheduler that is alive but never writes a layer does not hold the worker forever."""
    layer = scheduler_images.store.get("busybox").manifest.layers[0].digest
    stalled = asyncio.Event()

    async def handler(message: Message) -> Message | None:
        if isinstance(message, FetchBlob) and message.digest == layer:
            stalled.set()
            await asyncio.Event().wait()  # holds the stream open, writes nothing
        return await scheduler_images.handle(message)

    worker = ImageStore(tmp_path / "worker")
    fetcher = ImageFetcher(worker, idle_timeout=0.2)

    async def body() -> None:
        async with served(scheduler_images, handler) as conn:
            with pytest.raises(Timeout, match=f"blob {layer}: no data"):
                await fetcher.ensure("busybox", conn.sender)
            assert stalled.is_set()

    run(body)
    assert not worker.blobs.has(layer)
    assert len(fetcher._downloads) == 0
    with pytest.raises(ImageNotFound):
        worker.get("busybox")
