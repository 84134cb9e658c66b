"""Fixtures for the CLI tests: a standalone worker, on the process driver and (as root) on the
native one."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from tests.helpers.worker_process import Worker
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker


@pytest.fixture(params=["process", pytest.param("native", marks=pytest.mark.root)])
def worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Worker]:
    driver = str(request.param)
    if driver == "native":
        store = ImageStore(tmp_path / "worker" / "images")
        import_test_image(store)  # what `shoal image import` would have put there
    node = Worker(tmp_path / "worker", driver)
    node.start()
    try:
        yield node
    finally:
        if node.proc is None:
            node.start()
        for ref in node.shoal("ps", "-aq", check=False).stdout.split():
            node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)
        if driver == "native":
            uvloop.run(tear_down_worker(tmp_path / "worker"))
