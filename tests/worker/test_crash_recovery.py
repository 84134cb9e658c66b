"""A worker killed with SIGKILL mid-create or mid-start (deterministically, at a crash point:
``worker.engine.faults``) settles what it left at its next start, before it reports anything:
a create never answered is gone, and a container whose record says Created has no process
left in its cgroup and no runtime state. And an image blob no image references (an import
killed before it recorded its image) is collected at start."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from tests.helpers.worker_process import Worker, wait_pid_exit
from worker.engine.faults import ENV
from worker.engine.native_driver import cgroup_scope
from worker.images import ImageStore
from worker.images.testimage import import_test_image
from worker.runtime import cgroups
from worker.runtime.state import StateDir, proc_start_time
from worker.teardown import tear_down_worker


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "worker"
    yield state
    uvloop.run(tear_down_worker(state))


def crashed_worker(state_dir: Path, point: str) -> Worker:
    """A native worker that dies at ``point`` of the first ``run -d`` it serves, dead."""
    import_test_image(ImageStore(state_dir / "images"))
    node = Worker(state_dir, "native", env={ENV: point})
    node.start()
    result = node.shoal("run", "-d", "busybox", "sleep", "1000", check=False)
    assert result.returncode != 0
    assert node.proc is not None and node.proc.wait(10) == -signal.SIGKILL
    node.proc = None
    node.env = {}
    return node


@pytest.mark.root
def test_a_create_cut_short_is_removed_at_restart(state_dir: Path) -> None:
    node = crashed_worker(state_dir, "create.prepared")
    [left] = list((state_dir / "containers").iterdir())
    node.start()
    try:
        assert node.shoal("ps", "-aq").stdout == ""
        assert not left.exists()
    finally:
        node.kill(signal.SIGTERM)


@pytest.mark.root
@pytest.mark.parametrize("point", ["start.runtime-created", "start.runtime-started"])
def test_a_start_cut_short_leaves_no_process_at_restart(state_dir: Path, point: str) -> None:
    node = crashed_worker(state_dir, point)
    [cid] = [p.name for p in (state_dir / "containers").iterdir()]
    runtime_state = StateDir(state_dir / "runtime", cid)
    saved = runtime_state.load()
    assert proc_start_time(saved.pid) == saved.pid_start  # the crash left it alive
    node.start()
    try:
        wait_pid_exit(saved.pid)
        assert not os.path.exists(runtime_state.path)
        dirs = [d for _, d in cgroups.container_dirs(
            cgroups.discover(), f"shoal/{cgroup_scope(state_dir)}/{cid}", cid)]
        assert cgroups.pids_in(dirs) == []
        [row] = node.shoal("ps", "-a").stdout.splitlines()[1:]
        assert row.startswith(cid[:12]) and "Created" in row
        # It starts afresh.
        node.shoal("start", cid)
        assert "Up " in node.shoal("ps").stdout
        node.shoal("rm", "-f", cid)
    finally:
        node.kill(signal.SIGTERM)


def test_an_unreferenced_blob_is_collected_at_start(tmp_path: Path) -> None:
    state = tmp_path / "worker"
    store = ImageStore(state / "images")
    image = import_test_image(store)
    kept = set(store.blobs.digests())
    stray = store.blobs.put_bytes(b"a layer whose import was killed before its image was added")
    partial = store.root / "ingest" / "half-written"
    partial.write_bytes(b"half a blob")
    node = Worker(state, "process")
    node.start()
    try:
        assert set(ImageStore(state / "images").blobs.digests()) == kept
        assert stray not in kept and not partial.exists()
        assert ImageStore(state / "images").get(image.id).id == image.id
        log = (tmp_path / "worker.log").read_text()
        assert "image store collected what no image references" in log and stray in log
    finally:
        node.kill(signal.SIGTERM)
