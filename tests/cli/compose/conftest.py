"""The standalone worker the compose end-to-end tests run against."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from tests.helpers.requirements import missing
from tests.helpers.worker_process import Worker
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker


@pytest.fixture
def native(tmp_path: Path) -> Iterator[Worker]:
    """A worker on the native driver with the test image, its containers removed after."""
    if shutil.which("nft") is None:
        missing("nftables (nft)")
    import_test_image(ImageStore(tmp_path / "worker" / "images"))
    node = Worker(tmp_path / "worker", "native")
    node.start()
    try:
        yield node
    finally:
        for ref in node.shoal("ps", "-aq", check=False).stdout.split():
            node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)
        uvloop.run(tear_down_worker(tmp_path / "worker"))
