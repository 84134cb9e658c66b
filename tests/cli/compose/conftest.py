"""The standalone worker the compose end-to-end tests run against."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.native_worker import native_worker
from tests.helpers.worker_process import Worker


@pytest.fixture
def native(tmp_path: Path) -> Iterator[Worker]:
    """A worker on the native driver with the test image, its containers removed after."""
    with native_worker(tmp_path / "worker") as node:
        yield node
