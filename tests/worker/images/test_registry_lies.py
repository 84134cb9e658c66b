"""A registry that lies (wrong digest, wrong size, truncated blobs, huge or false manifests) is
refused with nothing stored; a transfer broken mid-blob resumes with ``Range``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.bounded_run import run
from tests.helpers.image_layers import E
from tests.helpers.lying_registry import Lies, LyingRegistry
from tests.helpers.registry_images import RegistryImage, small_image
from worker.images import DigestMismatch, ImageStore, InvalidImage, LayerRejected
from worker.images.digest import digest_bytes
from worker.images.oci import MAX_DOCUMENT_BYTES
from worker.images.registry import Puller, PullResult, RegistryAccess, RegistryError, remote_name
from worker.images.registry.progress import BlobProgress

ACCESS = RegistryAccess(insecure=True, certs_dirs=())
IMAGE = small_image(os.urandom(600_000))  # random: the gzipped layer stays ~600 KB
LAYER = digest_bytes(IMAGE.layer)


def _pull(store: ImageStore, lies: Lies, image: RegistryImage = IMAGE, reference: str = "1",
          events: list[BlobProgress] | None = None) -> tuple[PullResult, LyingRegistry]:
    server = LyingRegistry(image, lies)

    async def scenario() -> PullResult:
        async with server.serving():
            name = remote_name(f"{server.address}/app:{reference}" if ":" not in reference
                               else f"{server.address}/app@{reference}")
            puller = Puller(store, name, ACCESS,
                            progress=events.append if events is not None else lambda e: None)
            return await puller.pull()

    return run(scenario), server


def _nothing_stored(store: ImageStore) -> None:
    assert store.images() == []
    assert LAYER not in set(store.blobs.digests())


@pytest.mark.parametrize(("lies", "error", "words"), [
    # Another blob's bytes: the scan of the arriving bytes or the digest at their end refuses.
    (Lies(blob_bytes={LAYER: os.urandom(len(IMAGE.layer))}), (DigestMismatch, LayerRejected),
     "digest|layer rejected"),
    (Lies(blob_bytes={LAYER: IMAGE.layer + b"more"}), DigestMismatch, "more than"),
    (Lies(blob_bytes={LAYER: IMAGE.layer[:-100]}), RegistryError, "connection ended"),
    (Lies(cut_after=1000, cut_times=99), RegistryError, "resumes at byte"),
    (Lies(manifest_length=MAX_DOCUMENT_BYTES + 1), InvalidImage, "limit"),
    (Lies(manifest_bytes=b" " * (MAX_DOCUMENT_BYTES + 10)), InvalidImage, "limit"),
    (Lies(announced_digest="sha256:" + "0" * 64), DigestMismatch, "expected"),
])
def test_a_lying_registry_is_refused(tmp_path: Path, lies: Lies,
                                     error: type[Exception] | tuple[type[Exception], ...],
                                     words: str) -> None:
    store = ImageStore(tmp_path / "store")
    with pytest.raises(error, match=words):
        _pull(store, lies)
    _nothing_stored(store)


def test_a_manifest_pulled_by_digest_must_have_it(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    other = small_image(b"other")
    with pytest.raises(DigestMismatch, match=IMAGE.digest):
        _pull(store, Lies(manifest_bytes=other.manifest, announced_digest=other.digest),
              reference=IMAGE.digest)
    _nothing_stored(store)


def test_a_broken_transfer_resumes_with_range(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    events: list[BlobProgress] = []
    result, server = _pull(store, Lies(cut_after=250_000, cut_times=1), events=events)
    assert result.image.manifest_digest == IMAGE.digest
    assert server.ranges.count("") == 2  # config and layer, each asked for once from 0
    assert "bytes=250000-" in server.ranges  # the layer's second request went on from the cut
    assert any(e.action == "resuming" and e.current == 250_000 for e in events)
    assert store.blobs.path(LAYER).read_bytes() == IMAGE.layer


def test_the_next_pull_resumes_what_a_failed_one_left(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    with pytest.raises(RegistryError):
        _pull(store, Lies(cut_after=100_000, cut_times=4))  # every attempt of this pull cut
    _nothing_stored(store)
    result, server = _pull(store, Lies())
    assert result.image.manifest_digest == IMAGE.digest
    assert server.ranges == ["bytes=400000-"]  # four cuts of 100 000 bytes were kept


def test_a_registry_ignoring_range_restarts_the_blob(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    result, server = _pull(store, Lies(cut_after=250_000, cut_times=1, ignore_range=True))
    assert result.image.manifest_digest == IMAGE.digest
    assert "bytes=250000-" in server.ranges
    assert store.blobs.path(LAYER).read_bytes() == IMAGE.layer


def test_a_hostile_layer_is_refused_and_dropped(tmp_path: Path) -> None:
    """Digest and size right, content hostile: the scan an import does refuses it."""
    hostile = small_image(b"x", extra=(E("../../escape", data=b"owned"),))
    store = ImageStore(tmp_path / "store")
    with pytest.raises(LayerRejected, match="escape"):
        _pull(store, Lies(), image=hostile)
    assert store.images() == []
    assert digest_bytes(hostile.layer) not in set(store.blobs.digests())
