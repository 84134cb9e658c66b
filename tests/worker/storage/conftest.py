"""Fixtures for storage tests: overlayfs where a test needs it (fail, not skip, in CI), an
image store holding the busybox test image, and no mount left behind whatever happens.
(Root and busybox are the ``root`` marker's to check: tests/conftest.py.)"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.requirements import missing
from worker.images import testimage
from worker.images.store import Image, ImageStore
from worker.storage import mounts
from worker.storage.select import probe_overlay


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state directory; every mount under it is undone at the end, even after a failure."""
    root = tmp_path / "state"
    root.mkdir()
    try:
        yield root
    finally:
        for point in mounts.mounts_under(tmp_path):
            mounts.unmount(Path(point))
        leftover = mounts.mounts_under(tmp_path)
        shutil.rmtree(tmp_path, ignore_errors=True)
        assert leftover == []


@pytest.fixture
def overlay_ok(state: Path) -> None:
    probe = probe_overlay(state / "probe")
    if not probe.ok:
        missing(f"working overlay mounts ({probe.reason})")


@pytest.fixture
def images(state: Path) -> ImageStore:
    return ImageStore(state / "images")


@pytest.fixture
def busybox(images: ImageStore) -> Image:
    return testimage.import_test_image(images)
