"""A standalone worker on the native driver with the test image, for the CLI's end-to-end
tests: started, and at the end its containers removed, the worker stopped and its host state
(mounts, networks, cgroups) torn down."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvloop

from tests.helpers.requirements import missing
from tests.helpers.worker_process import Worker
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.teardown import tear_down_worker


@contextmanager
def native_worker(state_dir: Path, *, networks: bool = True) -> Iterator[Worker]:
    """``networks``: the containers get bridge networks, which need nftables."""
    if networks and shutil.which("nft") is None:
        missing("nftables (nft)")
    import_test_image(ImageStore(state_dir / "images"))
    node = Worker(state_dir, "native")
    node.start()
    try:
        yield node
    finally:
        if node.proc is None:  # a test stopped it: started again to remove what it holds
            node.start()
        for ref in node.shoal("ps", "-aq", check=False).stdout.split():
            node.shoal("rm", "-f", ref, check=False)
        node.kill(signal.SIGTERM)
        uvloop.run(tear_down_worker(state_dir))
