"""Fixtures for storage tests: root and overlayfs required (fail, not skip, in CI), an image
store holding the busybox test image, and no mount left behind whatever happens."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.images import testimage
from worker.images.store import Image, ImageStore
from worker.storage import mounts
from worker.storage.select import probe_overlay


def missing(what: str) -> None:
    """Skip locally, but fail in CI: a storage test that cannot run there is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"storage test needs {what}")
    pytest.skip(f"needs {what}")


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state directory; every mount under it is undone at the end, even after a failure."""
    if os.geteuid() != 0:
        missing("root")
    if not testimage.BUSYBOX.exists():
        missing("busybox-static (/bin/busybox)")
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
